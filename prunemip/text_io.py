"""Text files the user names (VNN-LIB properties, instances lists, study configs), read as UTF-8.

Every way such a file can fail to be text (missing, a folder, unreadable, not UTF-8) is one
line naming the file, so each reader only has to say what it expected inside.
"""

from __future__ import annotations

from pathlib import Path

from prunemip.errors import PrunemipError


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``path``.

    Args:
        path: the file.
        what: what the file is, for the message (e.g. ``"property file"``).

    Returns:
        The file's text.

    Raises:
        PrunemipError: when the file is missing, a folder, unreadable or not UTF-8 text.
    """
    target = Path(path)
    if not target.exists():
        raise PrunemipError(f"{what} {target} does not exist")
    if not target.is_file():
        raise PrunemipError(f"cannot read {what} {target}: it is a folder, not a file")
    try:
        data = target.read_bytes()
    except OSError as error:
        raise PrunemipError(f"cannot read {what} {target}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PrunemipError(
            f"cannot read {what} {target}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
            f"{error.start})"
        ) from None
