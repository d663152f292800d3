"""Content keys: the same configuration always gets the same short name, another never does."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_key(payload: Any) -> str:
    """First 16 hex digits of the SHA-256 of ``payload`` as canonical JSON (sorted keys,
    no spaces, non-JSON values by ``str``): run directories and study jobs are named by it.

    Args:
        payload: any JSON-like value (dicts, lists, numbers, strings; others by ``str``).

    Returns:
        A 16-character lowercase hex string.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
