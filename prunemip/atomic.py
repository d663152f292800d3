"""Atomic file writes: nothing half-written, ever.

Every file prunemip writes (models, MIPs, results, pictures, downloads) goes to a
temporary sibling first and is renamed over the target only once complete, so a
failure or an interrupt leaves either the old file or no file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from prunemip.errors import PrunemipError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _new_file_mode() -> int:
    """The permissions ``open()`` would give a new file (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Run ``write`` on a temporary file next to ``path``, then rename it into place.

    Args:
        path: the file to write; its folder must exist.
        write: writes the whole content to the binary handle it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: when the folder is missing or the file cannot be written (the target is
            then left as it was).
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise PrunemipError(f"cannot write {target}: folder {target.parent} does not exist")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise PrunemipError(f"cannot write {target} ({exc.strerror or _first_line(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            Path(temp_name).chmod(_new_file_mode())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp_name).replace(target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            Path(temp_name).unlink()
        if isinstance(exc, OSError):
            raise PrunemipError(f"cannot write {target} ({exc.strerror or _first_line(exc)})") from None
        raise
    return target


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: the file to write; its folder must exist.
        data: the whole content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: when the file cannot be written.
    """
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    """Write text lines (each followed by a newline), UTF-8, atomically.

    Args:
        path: the file to write; its folder must exist.
        lines: the lines, without their newlines.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: when the file cannot be written.
    """

    def write(handle: IO[bytes]) -> None:
        for line in lines:
            handle.write(line.encode("utf-8"))
            handle.write(b"\n")

    return atomic_write(path, write)
