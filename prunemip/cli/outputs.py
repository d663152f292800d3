"""Result files the ``prunemip`` commands write (``attack --json``, ``demo --save-dir``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prunemip.atomic import atomic_write_lines


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically (a failure leaves no partial file).

    Args:
        path: the file to write.
        payload: the data; values JSON cannot hold are written as their ``str``.

    Returns:
        The path written.
    """
    return atomic_write_lines(path, [json.dumps(payload, indent=2, default=str)])
