"""A (pruned) ReLU network as a Pyomo block: prunemip's big-M MIP inside the user's own model.

::

    import pyomo.environ as pyo
    from prunemip.embed.pyomo import PrunemipBlock

    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(8), bounds=(0, 1))
    m.nn = PrunemipBlock()
    m.nn.build(network, inputs=m.x)          # the network's inputs are m.x itself
    m.obj = pyo.Objective(expr=m.nn.outputs[0], sense=pyo.maximize)
    pyo.SolverFactory("appsi_highs").solve(m)

The block holds ``inputs`` (the user's variables by reference, or its own when no
``inputs`` are given) and ``outputs`` indexed variables, like OMLT's ``OmltBlock``, and
underneath exactly the :class:`~prunemip.encoders.mip_model.MipModel` that
:func:`~prunemip.encoders.bigm.encode` builds over the box of the inputs' bounds: one
matrix entry per surviving weight (never a ``0*x`` term), continuous variables
``hidden[...]`` only for live neurons, a binary ``binaries[...]`` only for each unstable
one, and rows ``rows[...]`` named after the MipModel's rows (``ge1_5``: ``y ≥ ẑ`` of
neuron 5 in layer 1; ``lo``, ``up``: the big-M rows; ``lin``: stably active or linear).

Construction is vectorised: the MipModel's CSR rows become Pyomo ``LinearExpression``
objects directly (no operator overloading, no expression walking); every variable is
initialised to a forward pass at a point of the box, inside its bounds (no W1002
warnings).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData, declare_custom_block
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression

from prunemip.embed.base import (
    EmbeddedNetwork,
    InputBounds,
    InputBox,
    encode_box,
    own_input_box,
    resolve_input_box,
    split_columns,
    start_point,
)
from prunemip.encoders.bigm import DEFAULT_FORMULATION
from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError
from prunemip.network import Network

__all__ = ["PrunemipBlock", "PrunemipBlockData", "network_block"]


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def var_list(variables: Any, size: int, what: str) -> list[Any]:
    """The Pyomo variables of ``variables``, in iteration order.

    Args:
        variables: an indexed Var, a Reference, a sequence of Var data, or one scalar Var.
        size: how many variables there must be.
        what: what they are (``"inputs"``, ``"outputs"``), for the error messages.

    Returns:
        Exactly ``size`` variable data objects.

    Raises:
        PrunemipError: something is not a variable, or the count differs from ``size``.
    """
    if isinstance(variables, (str, bytes)):
        raise PrunemipError(f"{what} must be Pyomo variables, not a string")
    if hasattr(variables, "is_indexed") and variables.is_indexed():
        items = list(variables.values())
    elif hasattr(variables, "is_variable_type"):
        items = [variables]
    elif isinstance(variables, (Sequence, np.ndarray)):
        items = list(np.asarray(variables, dtype=object).reshape(-1))
    else:
        raise PrunemipError(
            f"{what} must be an indexed Pyomo Var (e.g. m.x) or a list of variables, "
            f"not {type(variables).__name__}"
        )
    for k, item in enumerate(items):
        if not (hasattr(item, "is_variable_type") and item.is_variable_type()):
            raise PrunemipError(f"{what}[{k}] is not a Pyomo variable (got {type(item).__name__})")
    if len(items) != size:
        raise PrunemipError(
            f"{what} holds {len(items)} variables but the network has {size}; "
            f"pass one variable per network {what[:-1] if what.endswith('s') else what}"
        )
    return items


def variable_bounds(variables: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of Pyomo variables, domain included.

    A fixed variable's bounds are its value (the formulation then holds for that value).

    Args:
        variables: Pyomo variable data objects.

    Returns:
        Their lower and upper bounds (±inf where absent).
    """
    lower, upper = [], []
    for var in variables:
        if var.fixed and var.value is not None:
            lower.append(float(var.value))
            upper.append(float(var.value))
        else:
            lower.append(-np.inf if var.lb is None else float(var.lb))
            upper.append(np.inf if var.ub is None else float(var.ub))
    return np.array(lower), np.array(upper)


def variable_values(variables: Sequence[Any]) -> np.ndarray | None:
    """Current values of Pyomo variables.

    Args:
        variables: Pyomo variable data objects.

    Returns:
        Their values, or ``None`` if any variable has none.
    """
    values = [v.value for v in variables]
    if any(value is None for value in values):
        return None
    return np.array(values, dtype=np.float64)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building one object per matrix entry: it would
    otherwise rescan the growing heap again and again (build times with and without it:
    ``experiments/benchmarks/pyomo_gc.py`` and its README)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _row_rules(mip: MipModel, col_var: Sequence[Any]) -> dict[str, Any]:
    """One Pyomo row per MipModel row, keyed by its name: ``LinearExpression``s built directly from
    the CSR arrays (one ``MonomialTermExpression`` per stored entry, no operator overloading)."""
    csr = mip.matrix.tocsr()
    csr.sort_indices()
    indptr = csr.indptr.tolist()
    entry_vars = [col_var[c] for c in csr.indices.tolist()]
    terms = list(map(MonomialTermExpression, zip(csr.data.tolist(), entry_vars, strict=True)))
    row_lower, row_upper = _finite_or_none(mip.row_lower), _finite_or_none(mip.row_upper)
    rules: dict[str, Any] = {}
    for r, name in enumerate(mip.row_names()):
        start, stop = indptr[r], indptr[r + 1]
        lo, hi = row_lower[r], row_upper[r]
        if start == stop:  # no variable left in the row: it must hold as a constant
            if (lo is not None and lo > 0.0) or (hi is not None and hi < 0.0):
                raise PrunemipError(f"row {name} of the network's MIP is infeasible for every input")
            continue
        expression = LinearExpression(terms[start:stop])
        rules[name] = (expression == lo) if lo is not None and lo == hi else (lo, expression, hi)
    return rules


def embed_in_block(
    block: Any,
    mip: MipModel,
    box: InputBox,
    input_vars: Sequence[Any],
    output_vars: Sequence[Any] | None,
    *,
    own_inputs: bool,
    link_outputs: bool,
    start_input: np.ndarray | None = None,
) -> None:
    """Add ``mip``'s columns (but its inputs) and rows to ``block``.

    Args:
        block: the Pyomo block that receives ``hidden``, ``binaries``, ``rows`` and, as
            needed, ``input_box`` and ``output_link``.
        mip: the MipModel to embed.
        box: its input box.
        input_vars: the variables that take the MipModel's input columns.
        output_vars: the variables that take its output columns (``None``: none; the logits
            stay in ``hidden``).
        own_inputs: the inputs belong to the block: they get the box as bounds and a start
            value. Otherwise they are the user's: untouched, and where the box is tighter
            than their bounds it is added as rows ``input_box[k]``.
        link_outputs: keep the logits in ``hidden`` and add
            ``output_link[j]: output_vars[j] == logit_j``, instead of giving ``output_vars``
            the output columns directly (bounds and start value set).
        start_input: the input the start values come from (see
            :func:`~prunemip.embed.base.start_point`).
    """
    split = split_columns(mip)
    values = start_point(mip, box, start_input)
    names = mip.column_names()
    col_lower, col_upper = _finite_or_none(mip.col_lower), _finite_or_none(mip.col_upper)
    col_var: list[Any] = [None] * mip.n_cols
    for c, k in zip(mip.input_columns.tolist(), range(mip.input_columns.size), strict=True):
        col_var[c] = input_vars[k]
    if own_inputs:
        for k, var in enumerate(input_vars):
            var.setlb(float(box.lower[k]))
            var.setub(float(box.upper[k]))
            var.set_value(float(values[mip.input_columns[k]]), skip_validation=True)
    elif np.any(box.tightened):
        tight = np.flatnonzero(box.tightened).tolist()
        block.input_box = pyo.Constraint(
            tight, rule={k: (float(box.lower[k]), input_vars[k], float(box.upper[k])) for k in tight}
        )

    direct_outputs = {} if link_outputs or output_vars is None else dict(enumerate(output_vars))
    output_index = {c: j for j, c in enumerate(mip.output_columns.tolist())}
    continuous, binary = [], []
    for c, is_binary in zip(split.added.tolist(), split.binary.tolist(), strict=True):
        j = output_index.get(c)
        if j is not None and j in direct_outputs:
            var = direct_outputs[j]
            var.setlb(col_lower[c])
            var.setub(col_upper[c])
            var.set_value(float(values[c]), skip_validation=True)
            col_var[c] = var
        else:
            (binary if is_binary else continuous).append(c)

    if continuous:
        block.hidden = pyo.Var(
            [names[c] for c in continuous],
            bounds={names[c]: (col_lower[c], col_upper[c]) for c in continuous},
            initialize={names[c]: float(values[c]) for c in continuous},
        )
        for c in continuous:
            col_var[c] = block.hidden[names[c]]
    if binary:
        block.binaries = pyo.Var(
            [names[c] for c in binary],
            domain=pyo.Binary,
            initialize={names[c]: float(round(values[c])) for c in binary},
        )
        for c in binary:
            col_var[c] = block.binaries[names[c]]

    with _gc_paused():
        rules = _row_rules(mip, col_var)
        block.rows = pyo.Constraint(list(rules), rule=rules)

    if link_outputs and output_vars is not None:
        block.output_link = pyo.Constraint(
            range(len(output_vars)),
            rule={
                j: output_vars[j] == col_var[c]  # type: ignore[operator]
                for j, c in enumerate(mip.output_columns.tolist())
            },
        )


@declare_custom_block(name="PrunemipBlock")
class PrunemipBlockData(BlockData, EmbeddedNetwork):
    """A Pyomo block holding a network's inputs, outputs and prunemip's big-M formulation.

    Create it empty (``m.nn = PrunemipBlock()``) and call :meth:`build`, or use
    :func:`network_block`.
    """

    def __init__(self, component: Any) -> None:
        super().__init__(component)
        self._prunemip: dict[str, Any] | None = None

    def build(
        self,
        network: Network,
        *,
        inputs: Any = None,
        outputs: Any = None,
        input_bounds: InputBounds = None,
        bounds_method: str | None = None,
        formulation: str = DEFAULT_FORMULATION,
    ) -> PrunemipBlockData:
        """Add ``network``'s formulation to this block.

        The neuron bounds are computed over the box of the inputs' bounds intersected with
        ``input_bounds``.

        Args:
            network: the prunemip network to embed.
            inputs: the user's variables that feed the network (an indexed Var such as
                ``m.x``, or a list of variables, one per network input, in the network's
                input order). ``block.inputs`` refers to them and no linking rows are added.
                Without ``inputs`` the block creates its own ``inputs[0..n-1]``.
            outputs: optional user variables that receive the network's outputs (linked by
                equality rows ``output_link``); without them the block creates
                ``outputs[0..m-1]``.
            input_bounds: ``(lower, upper)`` scalars or vectors, an InputRegion box, an
                InputSpec, or ``"network"`` for the network's InputSpec range (the default
                for the block's own inputs).
            bounds_method: ``"linear"`` by default, ``"ia"``, or an LP/MIP method (see
                :func:`~prunemip.embed.base.neuron_bounds`).
            formulation: ``encode``'s (``"substituted"`` or ``"variable"``).

        Returns:
            This block, built.

        Raises:
            PrunemipError: the block is already built, an input has a missing or infinite
                bound (the message names it), or the variables do not fit the network.
        """
        if self._prunemip is not None:
            raise PrunemipError(f"block {self.name} is already built; create a new PrunemipBlock")
        if not isinstance(network, Network):
            raise PrunemipError(f"expected a prunemip Network, got {type(network).__name__}")
        n_in, n_out = network.n_inputs, network.n_outputs
        user_outputs = None if outputs is None else var_list(outputs, n_out, "outputs")
        if inputs is None:
            box = own_input_box(
                network,
                [f"{self.name}.inputs[{k}]" for k in range(n_in)],
                "network" if input_bounds is None else input_bounds,
                hint="give the network an InputSpec range",
            )
            self.inputs = pyo.Var(range(n_in))
            input_vars = [self.inputs[k] for k in range(n_in)]
            start_input = None
        else:
            input_vars = var_list(inputs, n_in, "inputs")
            lower, upper = variable_bounds(input_vars)
            box = resolve_input_box(
                network,
                lower,
                upper,
                [v.name for v in input_vars],
                input_bounds,
                hint="bound it in your model",
            )
            is_component = hasattr(inputs, "is_indexed") and inputs.is_indexed()
            self.inputs = pyo.Reference(inputs if is_component else input_vars)
            start_input = variable_values(input_vars)
        mip = encode_box(network, box, bounds_method=bounds_method, formulation=formulation)
        if user_outputs is None:
            self.outputs = pyo.Var(range(n_out))
            output_vars = [self.outputs[j] for j in range(n_out)]
        else:
            is_component = hasattr(outputs, "is_indexed") and outputs.is_indexed()
            self.outputs = pyo.Reference(outputs if is_component else user_outputs)
            output_vars = user_outputs
        embed_in_block(
            self,
            mip,
            box,
            input_vars,
            output_vars,
            own_inputs=inputs is None,
            link_outputs=user_outputs is not None,
            start_input=start_input,
        )
        self._prunemip = {"mip": mip, "box": box, "inputs": input_vars, "outputs": output_vars}
        return self

    # ------------------------------------------------------------------ introspection
    def _built(self) -> dict[str, Any]:
        if self._prunemip is None:
            raise PrunemipError(f"block {self.name} is empty: call .build(network, ...) first")
        return self._prunemip

    @property
    def mip(self) -> MipModel:
        """The MipModel this block embeds (columns, rows, neuron statuses, bounds)."""
        return self._built()["mip"]

    @property
    def input_lower(self) -> np.ndarray:
        """The input box the neuron bounds hold over."""
        return self._built()["box"].lower.copy()

    @property
    def input_upper(self) -> np.ndarray:
        """The input box the neuron bounds hold over."""
        return self._built()["box"].upper.copy()

    def _solved(self, key: str, what: str) -> np.ndarray:
        values = variable_values(self._built()[key])
        if values is None:
            raise PrunemipError(f"block {self.name}: an {what} has no value; solve the model first")
        return values

    def input_values(self) -> np.ndarray:
        return self._solved("inputs", "input")

    def output_values(self) -> np.ndarray:
        return self._solved("outputs", "output")

    def _stats_title(self) -> str:
        return f"Pyomo block {self.name}"

    def _added_rows(self) -> int:
        extra = (getattr(self, "input_box", ()), getattr(self, "output_link", ()))
        return self.mip.n_rows + sum(len(c) for c in extra)


PrunemipBlock: Any  # created by declare_custom_block


def network_block(network: Network, **options: Any) -> Any:
    """A built, unattached :class:`PrunemipBlock`: ``m.nn = network_block(net, inputs=m.x)``.

    Args:
        network: the prunemip network to embed.
        **options: :meth:`PrunemipBlockData.build`'s keyword arguments (``inputs``,
            ``outputs``, ``input_bounds``, ``bounds_method``, ``formulation``).

    Returns:
        The block, ready to attach to a model.
    """
    block = PrunemipBlock(concrete=True)  # noqa: F821
    block.build(network, **options)
    return block
