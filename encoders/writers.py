"""Write a ``MipModel`` as a free-format MPS or CPLEX LP file.

Numbers are written with Python's shortest round-trip ``repr``, so a reader gets the
exact float64 coefficients back. Files are written atomically
(:mod:`prunemip.atomic`): a failure never leaves a half-written model behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prunemip.atomic import atomic_write_lines
from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError

FORMATS = (".mps", ".lp")
_LP_TERMS_PER_LINE = 8


def write_model(model: MipModel, path: str | Path) -> Path:
    """Write ``model`` to ``path``; the suffix (``.mps`` or ``.lp``) picks the format.

    Args:
        model: the MIP.
        path: the target file, ending in ``.mps`` or ``.lp`` (written atomically).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: for another suffix or a file that cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise PrunemipError(f"cannot write {target.name!r}: use a .mps or .lp file name")
    lines = _mps_lines(model) if suffix == ".mps" else _lp_lines(model)
    atomic_write_lines(target, lines)
    return target


def _num(value: float) -> str:
    return repr(float(value))


def _mps_lines(model: MipModel) -> Iterator[str]:
    columns = model.column_names()
    rows = model.row_names()
    yield "NAME prunemip"
    yield "OBJSENSE"
    yield "    MAX" if model.maximize else "    MIN"
    yield "ROWS"
    yield " N  obj"
    for name, low, high in zip(rows, model.row_lower, model.row_upper, strict=True):
        kind = "E" if low == high else ("L" if np.isneginf(low) else "G")
        yield f" {kind}  {name}"
    yield "COLUMNS"
    matrix = model.matrix
    in_integer_block = False
    for j, name in enumerate(columns):
        integral = bool(model.integrality[j])
        if integral != in_integer_block:
            marker = "INTORG" if integral else "INTEND"
            yield f"    MARKER 'MARKER' '{marker}'"
            in_integer_block = integral
        if model.objective[j] != 0.0:
            yield f"    {name} obj {_num(model.objective[j])}"
        start, end = matrix.indptr[j], matrix.indptr[j + 1]
        for i, value in zip(matrix.indices[start:end], matrix.data[start:end], strict=True):
            yield f"    {name} {rows[i]} {_num(value)}"
    if in_integer_block:
        yield "    MARKER 'MARKER' 'INTEND'"
    yield "RHS"
    if model.objective_offset != 0.0:
        yield f"    rhs obj {_num(-model.objective_offset)}"
    for name, low, high in zip(rows, model.row_lower, model.row_upper, strict=True):
        rhs = high if np.isneginf(low) else low
        if rhs != 0.0:
            yield f"    rhs {name} {_num(rhs)}"
    ranged = [
        (name, high - low)
        for name, low, high in zip(rows, model.row_lower, model.row_upper, strict=True)
        if np.isfinite(low) and np.isfinite(high) and low != high
    ]
    if ranged:
        yield "RANGES"
        for name, width in ranged:
            yield f"    rng {name} {_num(width)}"
    yield "BOUNDS"
    for name, low, high in zip(columns, model.col_lower, model.col_upper, strict=True):
        if low == high:
            yield f" FX bnd {name} {_num(low)}"
            continue
        yield f" MI bnd {name}" if np.isneginf(low) else f" LO bnd {name} {_num(low)}"
        yield f" PL bnd {name}" if np.isposinf(high) else f" UP bnd {name} {_num(high)}"
    yield "ENDATA"


def _lp_terms(coefficients: np.ndarray, names: list[str]) -> Iterator[str]:
    """``+ a x`` terms, several per line (LP readers limit line length)."""
    terms = [
        f"{'+' if value >= 0 else '-'} {_num(abs(value))} {name}"
        for value, name in zip(coefficients, names, strict=True)
    ]
    for first in range(0, len(terms), _LP_TERMS_PER_LINE):
        yield "   " + " ".join(terms[first : first + _LP_TERMS_PER_LINE])


def _lp_lines(model: MipModel) -> Iterator[str]:
    columns = model.column_names()
    rows = model.row_names()
    yield "\\ prunemip MIP"
    yield "Maximize" if model.maximize else "Minimize"
    nonzero = np.flatnonzero(model.objective)
    yield " obj:"
    yield from _lp_terms(model.objective[nonzero], [columns[j] for j in nonzero])
    if model.objective_offset != 0.0:
        yield f"   {'+' if model.objective_offset >= 0 else '-'} {_num(abs(model.objective_offset))}"
    yield "Subject To"
    by_row = model.matrix.tocsr()
    for i, name in enumerate(rows):
        start, end = by_row.indptr[i], by_row.indptr[i + 1]
        terms = list(_lp_terms(by_row.data[start:end], [columns[j] for j in by_row.indices[start:end]]))
        low, high = model.row_lower[i], model.row_upper[i]
        if low == high:
            senses = [("=", low, name)]
        elif np.isneginf(low):
            senses = [("<=", high, name)]
        elif np.isposinf(high):
            senses = [(">=", low, name)]
        else:  # a ranged row becomes two rows
            senses = [(">=", low, f"{name}_lo"), ("<=", high, f"{name}_hi")]
        for sense, rhs, row_name in senses:
            yield f" {row_name}:"
            yield from terms or ["   0 " + columns[0]]
            yield f"   {sense} {_num(rhs)}"
    yield "Bounds"
    for name, low, high in zip(columns, model.col_lower, model.col_upper, strict=True):
        if low == high:
            yield f" {name} = {_num(low)}"
        else:
            lower = "-inf" if np.isneginf(low) else _num(low)
            upper = "+inf" if np.isposinf(high) else _num(high)
            yield f" {lower} <= {name} <= {upper}"
    integers = [columns[j] for j in np.flatnonzero(model.integrality)]
    if integers:
        yield "General"
        for first in range(0, len(integers), _LP_TERMS_PER_LINE):
            yield " " + " ".join(integers[first : first + _LP_TERMS_PER_LINE])
    yield "End"
