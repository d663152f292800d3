"""A (pruned) ReLU network as constraints of the user's own ``highspy.Highs`` model.

::

    h = highspy.Highs()
    x = h.addVariables(8, lb=0, ub=1)                 # the user's model, their columns
    ...
    nn = add_network(h, network, inputs=x)            # column indices or highspy variables
    h.maximize(h.getExpr ...)                         # use nn.output_columns / nn.output_vars
    h.run()
    nn.get_error()                                    # |forward(x) − y| per output
    nn.remove()                                       # the model is as it was before

The shape follows gurobi-ml's and PySCIPOpt-ML's ``add_predictor_constr``: one call,
and a handle with the output columns, ``print_stats()``, ``get_error()`` and
``remove()``. Underneath is exactly the :class:`~prunemip.encoders.mip_model.MipModel`
that :func:`~prunemip.encoders.bigm.encode` builds over the box of the input columns'
bounds, added in two bulk calls (``addCols``, then ``addRows`` with a CSR matrix): its
input columns are the user's columns (no linking rows), everything else is appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from prunemip.embed.base import (
    EmbeddedNetwork,
    InputBounds,
    InputBox,
    encode_box,
    resolve_input_box,
    split_columns,
)
from prunemip.encoders.bigm import DEFAULT_FORMULATION
from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError
from prunemip.network import Network

__all__ = ["HighsNetworkConstraint", "add_network"]

_OK = highspy.HighsStatus.kOk


def _column_indices(highs: highspy.Highs, columns: Any, size: int, what: str) -> np.ndarray:
    """Column indices from ints or highspy variables (``highs_var``, ``HighspyArray``)."""
    if isinstance(columns, (str, bytes)) or not isinstance(columns, (Sequence, np.ndarray)):
        raise PrunemipError(
            f"{what} must be a list of column indices or highspy variables, not {type(columns).__name__}"
        )
    items = list(np.asarray(columns, dtype=object).reshape(-1))
    indices = []
    for k, item in enumerate(items):
        index = getattr(item, "index", item)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise PrunemipError(f"{what}[{k}] is not a column index or highspy variable: {item!r}")
        indices.append(int(index))
    array = np.array(indices, dtype=np.int64)
    if array.size != size:
        raise PrunemipError(
            f"{what} holds {array.size} columns but the network has {size}; "
            f"pass one column per network {what[:-1]}"
        )
    n_col = highs.getNumCol()
    outside = (array < 0) | (array >= n_col)
    if np.any(outside):
        k = int(np.argmax(outside))
        raise PrunemipError(f"{what}[{k}] is column {array[k]}, but the model has {n_col} columns")
    return array


def _names_of(highs: highspy.Highs, kind: str, count: int) -> bool:
    """Whether the model names its columns (rows): then prunemip names what it adds."""
    if count == 0:
        return False
    getter = highs.getColName if kind == "col" else highs.getRowName
    status, name = getter(0)
    return status == _OK and bool(name)


def _column_name(highs: highspy.Highs, column: int) -> str:
    status, name = highs.getColName(int(column))
    return f"column {column} ({name})" if status == _OK and name else f"column {column}"


@dataclass(eq=False)
class HighsNetworkConstraint(EmbeddedNetwork):
    """What :func:`add_network` added to a ``highspy.Highs`` model, and how to read or undo it.

    ``columns``/``rows``: the indices of every added column and row (contiguous at the
    end of the model when added). ``input_columns``: the user's columns that feed the
    network; ``output_columns``: the columns holding its outputs (the user's own when
    ``outputs`` were given). ``binary_columns``: one per unstable neuron.
    """

    highs: highspy.Highs
    mip: MipModel
    box: InputBox
    input_columns: np.ndarray
    output_columns: np.ndarray
    columns: np.ndarray
    rows: np.ndarray
    binary_columns: np.ndarray
    column_of: np.ndarray = field(repr=False)  #: host column of every MipModel column
    removed: bool = False

    @property
    def output_vars(self) -> list[Any]:
        """The output columns as highspy variables (for ``highs.getExpr``-style modelling)."""
        return [highspy.highs_var(int(c), self.highs) for c in self.output_columns]

    def _check(self) -> None:
        if self.removed:
            raise PrunemipError("this network was removed from the model")

    def _solution(self) -> np.ndarray:
        self._check()
        info = self.highs.getInfo()
        if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
            raise PrunemipError("the model has no feasible solution to read; run highs.run() first")
        return np.asarray(self.highs.getSolution().col_value, dtype=np.float64)

    def input_values(self) -> np.ndarray:
        return self._solution()[self.input_columns]

    def output_values(self) -> np.ndarray:
        return self._solution()[self.output_columns]

    def remove(self) -> None:
        """Delete exactly the added rows and columns; the rest of the model is as before.

        Do not delete rows or columns in front of them between ``add_network`` and
        ``remove`` (that shifts their indices); adding more is fine.
        """
        self._check()
        highs = self.highs
        if highs.getNumCol() <= int(self.columns.max(initial=-1)) or highs.getNumRow() <= int(
            self.rows.max(initial=-1)
        ):
            raise PrunemipError("the model lost rows or columns since add_network; cannot remove the network")
        if self.rows.size and highs.deleteRows(len(self.rows), self.rows.astype(np.int32)) != _OK:
            raise PrunemipError("HiGHS refused to delete the network's rows")
        if self.columns.size and highs.deleteCols(len(self.columns), self.columns.astype(np.int32)) != _OK:
            raise PrunemipError("HiGHS refused to delete the network's columns")
        self.removed = True

    def _stats_title(self) -> str:
        return "highspy network constraint"

    def _added_rows(self) -> int:
        return int(self.rows.size)

    def _added_columns(self) -> int:
        return int(self.columns.size)


def add_network(
    highs: highspy.Highs,
    network: Network,
    inputs: Any,
    outputs: Any = None,
    *,
    input_bounds: InputBounds = None,
    bounds_method: str | None = None,
    formulation: str = DEFAULT_FORMULATION,
    name: str = "nn",
) -> HighsNetworkConstraint:
    """Add ``network`` as constraints linking the existing columns ``inputs`` to its outputs.

    The neuron bounds are computed over the box of the input columns' bounds intersected
    with ``input_bounds``; where that is tighter than a column's own bounds, the box is added
    as a row (the user's columns are never modified).

    Args:
        highs: the user's model.
        network: the prunemip network to embed.
        inputs: one existing column per network input (indices or highspy variables), in
            the network's input order.
        outputs: optional existing columns that receive the outputs (linked by equality
            rows); by default new output columns are added.
        input_bounds: ``(lower, upper)`` scalars or vectors, an InputRegion box, an
            InputSpec or ``"network"``.
        bounds_method: ``"linear"`` by default, ``"ia"``, ``"lp"``… (as the Pyomo block's).
        formulation: ``encode``'s (``"substituted"`` or ``"variable"``).
        name: the prefix of the added columns' and rows' names (``{name}.…``), used when the
            model names its own.

    Returns:
        The handle: added columns and rows, output columns, ``remove()``.

    Raises:
        PrunemipError: an input column has a missing (infinite) bound (the message names
            it), the columns do not fit the network, the name is taken, or HiGHS refuses
            the columns or rows.
    """
    if not isinstance(network, Network):
        raise PrunemipError(f"expected a prunemip Network, got {type(network).__name__}")
    input_cols = _column_indices(highs, inputs, network.n_inputs, "inputs")
    output_cols = None if outputs is None else _column_indices(highs, outputs, network.n_outputs, "outputs")
    _, _, _, lower, upper, _ = highs.getCols(len(input_cols), input_cols.astype(np.int32))
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    inf = highs.getInfinity()
    lower[lower <= -inf] = -np.inf
    upper[upper >= inf] = np.inf
    try:
        box = resolve_input_box(network, lower, upper, ["?"] * network.n_inputs, input_bounds)
    except PrunemipError:  # name the columns only when something is wrong (a call per column)
        names = [_column_name(highs, c) for c in input_cols]
        box = resolve_input_box(
            network, lower, upper, names, input_bounds, hint="give the column finite bounds in your model"
        )
    mip = encode_box(network, box, bounds_method=bounds_method, formulation=formulation)
    split = split_columns(mip)

    n_col0, n_row0 = highs.getNumCol(), highs.getNumRow()
    named_cols = _names_of(highs, "col", n_col0)
    named_rows = _names_of(highs, "row", n_row0) or (n_row0 == 0 and named_cols)
    if named_cols:
        status, _ = highs.getColByName(f"{name}.logit_0")
        if status == _OK:
            raise PrunemipError(f"the model already holds a network named {name!r}; pass another name=")
    column_of = np.empty(mip.n_cols, dtype=np.int64)
    column_of[mip.input_columns] = input_cols
    column_of[split.added] = n_col0 + np.arange(split.added.size)

    # The MipModel's rows over host columns, then the input box and output links.
    matrix = mip.matrix.tocoo()
    row_parts = [matrix.row]
    col_parts = [column_of[matrix.col]]
    val_parts = [matrix.data]
    row_lower, row_upper = [mip.row_lower], [mip.row_upper]
    row_names = [f"{name}.{r}" for r in mip.row_names()] if named_rows else []
    n_rows = mip.n_rows
    tight = np.flatnonzero(box.tightened)
    if tight.size:
        row_parts.append(n_rows + np.arange(tight.size))
        col_parts.append(input_cols[tight])
        val_parts.append(np.ones(tight.size))
        row_lower.append(box.lower[tight])
        row_upper.append(box.upper[tight])
        row_names += [f"{name}.input_box_{k}" for k in tight] if named_rows else []
        n_rows += tight.size
    if output_cols is not None:
        n_out = output_cols.size
        rows = n_rows + np.arange(n_out)
        row_parts += [rows, rows]
        col_parts += [output_cols, column_of[mip.output_columns]]
        val_parts += [np.ones(n_out), -np.ones(n_out)]
        row_lower.append(np.zeros(n_out))
        row_upper.append(np.zeros(n_out))
        row_names += [f"{name}.output_link_{j}" for j in range(n_out)] if named_rows else []
        n_rows += n_out
    n_total_cols = n_col0 + split.added.size
    # The COO → CSR conversion sums duplicates (an input column passed twice) and sorts.
    csr = sp.csr_matrix(
        (np.concatenate(val_parts), (np.concatenate(row_parts), np.concatenate(col_parts))),
        shape=(n_rows, n_total_cols),
    )
    csr.eliminate_zeros()

    added = split.added
    col_lower = np.where(np.isfinite(mip.col_lower[added]), mip.col_lower[added], -inf)
    col_upper = np.where(np.isfinite(mip.col_upper[added]), mip.col_upper[added], inf)
    empty = np.zeros(0, dtype=np.int32)
    status = highs.addCols(
        int(added.size), np.zeros(added.size), col_lower, col_upper, 0, empty, empty, np.zeros(0)
    )
    if status != _OK:
        raise PrunemipError("HiGHS refused the network's columns (addCols)")
    rows_lower = np.concatenate(row_lower)
    rows_upper = np.concatenate(row_upper)
    status = highs.addRows(
        int(n_rows),
        np.where(np.isfinite(rows_lower), rows_lower, -inf),
        np.where(np.isfinite(rows_upper), rows_upper, inf),
        int(csr.nnz),
        csr.indptr[:-1].astype(np.int32),
        csr.indices.astype(np.int32),
        csr.data.astype(np.float64),
    )
    columns = n_col0 + np.arange(added.size)
    if status != _OK:
        highs.deleteCols(len(columns), columns.astype(np.int32))
        raise PrunemipError("HiGHS refused the network's rows (addRows)")
    binary = column_of[added[split.binary]]
    if binary.size:
        highs.changeColsIntegrality(
            int(binary.size),
            binary.astype(np.int32),
            np.full(binary.size, highspy.HighsVarType.kInteger),
        )
    if named_cols:
        column_names = mip.column_names()
        for c in added.tolist():
            highs.passColName(int(column_of[c]), f"{name}.{column_names[c]}")
    for r, row_name in enumerate(row_names):
        highs.passRowName(n_row0 + r, row_name)
    return HighsNetworkConstraint(
        highs=highs,
        mip=mip,
        box=box,
        input_columns=input_cols,
        output_columns=column_of[mip.output_columns] if output_cols is None else output_cols,
        columns=columns,
        rows=n_row0 + np.arange(n_rows),
        binary_columns=binary,
        column_of=column_of,
    )
