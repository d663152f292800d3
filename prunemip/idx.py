"""Array files of the datasets: IDX (plain or gzip, as MNIST ships) and NPZ archives."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from prunemip.errors import PrunemipError

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-endian array.

    The header must be two zero bytes, a known type code, the number of dimensions and
    that many big-endian uint32 sizes, followed by exactly the promised data.

    Args:
        path: the ``.idx``/``-ubyte`` file, optionally gzip-compressed.

    Returns:
        The array, shaped as the header says, in its native-endian dtype.

    Raises:
        PrunemipError: when the file cannot be read, has a bad header or a wrong length.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise PrunemipError(f"cannot read {path}: {error}; re-download or replace it") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise PrunemipError(
            f"{path} is not an IDX file (header {data[:4].hex() or 'empty'}; expected 0000, "
            f"a type code in {sorted(_IDX_DTYPES)} and the rank); re-download or replace it"
        )
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    rank = data[3]
    offset = 4 + 4 * rank
    if len(data) < offset:
        raise PrunemipError(f"{path} is truncated inside its IDX header; re-download it")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", rank, 4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise PrunemipError(
            f"{path} is {'truncated' if len(data) - offset < expected else 'too long'}: its "
            f"header promises {dims} values of type {dtype.name} ({expected} bytes) but "
            f"{len(data) - offset} bytes follow; re-download it"
        )
    values = np.frombuffer(data, dtype, offset=offset).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def read_npz_array(path: Path, key: str) -> np.ndarray:
    """The array ``key`` of an ``.npz`` archive (no pickles); a damaged file is one line of error.

    Args:
        path: the ``.npz`` archive.
        key: the name of the array inside it.

    Returns:
        The array.

    Raises:
        PrunemipError: when the archive cannot be read or has no array ``key``.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]
    except (OSError, ValueError, KeyError) as error:
        raise PrunemipError(f"cannot read array {key!r} of {path}: {error}") from None
