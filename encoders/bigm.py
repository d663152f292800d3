"""The big-M MIP of a ReLU network over an input region (Tjeng et al., ICLR 2019).

For hidden neuron ``j`` with ``ẑ_j = Σ_{i: w_ji ≠ 0} w_ji h_i + b_j`` and bounds
``l_j ≤ ẑ_j ≤ u_j`` over the region:

* ``u_j ≤ 0`` (stably inactive): ``y_j = 0``; the neuron and its outgoing column vanish.
* ``l_j ≥ 0`` (stably active): ``y_j = ẑ_j``, one equality row, no binary.
* ``l_j < 0 < u_j`` (unstable), one binary ``δ_j``:
  ``y_j ≥ ẑ_j``, ``y_j ≥ 0``, ``y_j ≤ ẑ_j − l_j(1 − δ_j)``, ``y_j ≤ u_j δ_j``.

``ẑ`` is either substituted into the two rows that use it (``formulation="substituted"``,
so an unstable neuron's weights appear twice) or kept as a column with one defining
equality (``"variable"``: one matrix entry per surviving weight plus O(neurons)). A neuron
with no incoming weight from a variable is the constant ``ReLU(b_j)`` and is folded into
the next layer's bias; a neuron with no path to the outputs is dropped. No pruned weight
ever becomes a matrix entry, and ``#binaries = #unstable live neurons``.

Input regions: L∞ balls and boxes are column bounds; an L1 ball adds ``x − p + n = x0``
with ``p, n ≥ 0`` and ``Σ(p + n) ≤ δ``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from prunemip.encoders.bounds.interval import NeuronBounds, interval_bounds, interval_layer
from prunemip.encoders.mip_model import (
    EncodingStats,
    LayerEncoding,
    MipModel,
    NameBlock,
    NeuronStatus,
)
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion

FORMULATIONS: tuple[str, ...] = ("substituted", "variable")
#: The default, by measured HiGHS solve time (experiments/benchmarks/formulation.py, digits
#: 64-100-100-10, L∞, decide mode, 10 images × 2 seeds): dense, "substituted" took a
#: shifted geometric mean of 1.25 s vs 1.51 s (ε = 0.05) and 6.4 s vs 8.3 s (ε = 0.075);
#: 90 %-pruned, both about 0.06–0.1 s. The extra nonzeros cost less than the extra rows.
DEFAULT_FORMULATION = "substituted"

_VARIABLE_STATUSES = (NeuronStatus.ACTIVE, NeuronStatus.UNSTABLE, NeuronStatus.LINEAR)
#: Matrix entries this small are dropped by MIP solvers (HiGHS's ``small_matrix_value``).
#: The encoder never emits them: a weight with ``|w| ≤ TINY`` is moved into its row's
#: bounds as the interval of ``w·h`` over the bounds of ``h`` (a relaxation, so a proof
#: of robustness stays sound), and a big-M value is loosened to at least ``2·TINY``.
TINY = 1e-9
#: Weights or big-M values this large make the MIP numerically meaningless; refused.
HUGE = 1e12


@dataclass
class _Builder:
    """Accumulates columns and COO row entries; turns them into a ``MipModel``'s arrays."""

    col_lower: list[np.ndarray] = field(default_factory=list)
    col_upper: list[np.ndarray] = field(default_factory=list)
    col_integer: list[np.ndarray] = field(default_factory=list)
    col_blocks: list[NameBlock] = field(default_factory=list)
    n_cols: int = 0
    entry_rows: list[np.ndarray] = field(default_factory=list)
    entry_cols: list[np.ndarray] = field(default_factory=list)
    entry_vals: list[np.ndarray] = field(default_factory=list)
    row_lower: list[np.ndarray] = field(default_factory=list)
    row_upper: list[np.ndarray] = field(default_factory=list)
    row_blocks: list[NameBlock] = field(default_factory=list)
    n_rows: int = 0

    def add_columns(
        self, prefix: str, indices: np.ndarray, lower: np.ndarray, upper: np.ndarray, integer: bool = False
    ) -> np.ndarray:
        count = indices.size
        self.col_lower.append(np.asarray(lower, dtype=np.float64))
        self.col_upper.append(np.asarray(upper, dtype=np.float64))
        self.col_integer.append(np.full(count, integer))
        self.col_blocks.append(NameBlock(prefix, indices))
        columns = np.arange(self.n_cols, self.n_cols + count)
        self.n_cols += count
        return columns

    def add_rows(
        self,
        prefix: str,
        indices: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        local_rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
    ) -> None:
        """Rows ``lower ≤ Σ vals·v[cols] ≤ upper``; ``local_rows`` index into this block."""
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), indices.shape))
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), indices.shape))
        self.row_blocks.append(NameBlock(prefix, indices))
        self.entry_rows.append(local_rows + self.n_rows)
        self.entry_cols.append(cols)
        self.entry_vals.append(vals)
        self.n_rows += indices.size

    def matrix(self) -> sp.csc_matrix:
        rows = np.concatenate(self.entry_rows) if self.entry_rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(self.entry_cols) if self.entry_cols else np.zeros(0, dtype=np.int64)
        vals = np.concatenate(self.entry_vals) if self.entry_vals else np.zeros(0)
        matrix = sp.csc_matrix((vals, (rows, cols)), shape=(self.n_rows, self.n_cols))
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        return matrix


def _cat(parts: list[np.ndarray], dtype: type = np.float64) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def _affine_entries(
    weight_rows: sp.csr_matrix,
    prev_columns: np.ndarray,
    own_columns: np.ndarray,
    own_coef: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO entries of ``own_coef·v_own − W v_prev`` for each selected neuron (one row each)."""
    coo = weight_rows.tocoo()
    n = own_columns.size
    local = np.concatenate([np.arange(n), coo.row])
    cols = np.concatenate([own_columns, prev_columns[coo.col]])
    vals = np.concatenate([np.broadcast_to(np.asarray(own_coef, dtype=np.float64), (n,)), -coo.data])
    return local, cols, vals


@dataclass(frozen=True, eq=False)
class _LayerPlan:
    """Forward classification of one layer before any column exists."""

    weight: sp.csr_matrix  #: weights (|w| > TINY) from variable neurons of the previous layer
    bias_low: np.ndarray  #: bias with constants and tiny-weight terms folded in, as an interval
    bias_high: np.ndarray
    status: np.ndarray
    constant_value: np.ndarray  #: a representative value of each CONSTANT neuron (0 otherwise)
    constant_low: np.ndarray  #: the sound interval of that value (float folding rounds)
    constant_high: np.ndarray


def _fold(
    weight: sp.csr_matrix,
    keep: np.ndarray,
    bias: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Split ``W h + b`` into ``kept·h + [bias_low, bias_high]``.

    ``keep`` marks the stored entries that stay as matrix coefficients; every other entry
    is folded into the row's bias as the interval of ``w·h`` over ``h ∈ [lower, upper]``
    (a constant input has ``lower = upper``). The interval is rigorously widened for
    float64 rounding (``interval_layer``), so the rows stay a relaxation of the exact
    network; rows with nothing to fold keep their bias exactly.
    """
    if keep.all():
        return weight, bias, bias
    kept = weight.copy()
    kept.data[~keep] = 0.0
    kept.eliminate_zeros()
    rest = weight.copy()
    rest.data[keep] = 0.0
    rest.eliminate_zeros()
    touched = np.diff(rest.indptr) > 0
    low, high = interval_layer(rest, bias, lower, upper, relative=0.0)
    return kept, np.where(touched, low, bias), np.where(touched, high, bias)


def _classify(network: Network, region: InputRegion, bounds: NeuronBounds) -> list[_LayerPlan]:
    """Forward pass: fold constants, classify every neuron; backward pass: drop dead ones."""
    plans: list[_LayerPlan] = []
    prev_is_variable = np.ones(network.n_inputs, dtype=bool)
    prev_low = np.zeros(network.n_inputs)  # constant neurons' value intervals (0 for inactive)
    prev_high = np.zeros(network.n_inputs)
    prev_lower, prev_upper = region.lower, region.upper
    for k, layer in enumerate(network.layers):
        full = layer.weight.copy()
        full.eliminate_zeros()
        # Entries from inactive neurons (value exactly 0) vanish; entries from constant
        # neurons with a nonzero value are folded into the bias below.
        live_input = prev_is_variable | (prev_low != 0.0) | (prev_high != 0.0)
        full = (full @ sp.diags(live_input.astype(np.float64))).tocsr()
        full.eliminate_zeros()
        full.sort_indices()
        weight = (full @ sp.diags(prev_is_variable.astype(np.float64))).tocsr()
        weight.eliminate_zeros()
        if weight.nnz and np.max(np.abs(weight.data)) >= HUGE:
            raise PrunemipError(
                f"layer {k + 1} has a weight of magnitude {np.max(np.abs(weight.data)):.3g}; "
                "weights this large make the MIP numerically meaningless: rescale the network"
            )
        has_input = np.diff(weight.indptr) > 0
        status = np.full(layer.n_out, NeuronStatus.CONSTANT, dtype=np.int8)
        if layer.activation == "relu":
            inactive, active = bounds.stably_inactive(k), bounds.stably_active(k)
            status[has_input & inactive] = NeuronStatus.INACTIVE
            status[has_input & active & ~inactive] = NeuronStatus.ACTIVE
            status[has_input & ~active & ~inactive] = NeuronStatus.UNSTABLE
        else:
            status[has_input] = NeuronStatus.LINEAR
        # Coefficients: weights from variable neurons above solver precision (|w| > TINY).
        from_variable = prev_is_variable[full.indices]
        keep = from_variable & (np.abs(full.data) > TINY)
        box_low = np.where(prev_is_variable, prev_lower, prev_low)
        box_high = np.where(prev_is_variable, prev_upper, prev_high)
        kept, bias_low, bias_high = _fold(full, keep, layer.bias, box_low, box_high)
        constant = status == NeuronStatus.CONSTANT
        constant_low = np.where(constant, layer.activate(bias_low), 0.0)
        constant_high = np.where(constant, layer.activate(bias_high), 0.0)
        midpoint = layer.activate(0.5 * (bias_low + bias_high))
        constant_value = np.where(constant, np.clip(midpoint, constant_low, constant_high), 0.0)
        plans.append(
            _LayerPlan(kept, bias_low, bias_high, status, constant_value, constant_low, constant_high)
        )
        prev_is_variable = np.isin(status, _VARIABLE_STATUSES)
        prev_low, prev_high = constant_low, constant_high
        prev_lower, prev_upper = bounds.post_activation(k)
    for k in range(len(plans) - 2, -1, -1):
        following = plans[k + 1]
        live_rows = np.isin(following.status, _VARIABLE_STATUSES)
        used = np.diff(following.weight[live_rows].tocsc().indptr) > 0
        plans[k].status[np.isin(plans[k].status, _VARIABLE_STATUSES) & ~used] = NeuronStatus.REMOVED
    return plans


def _check_inputs(
    network: Network, region: InputRegion, bounds: NeuronBounds | None, formulation: str
) -> None:
    if formulation not in FORMULATIONS:
        raise PrunemipError(f"unknown formulation {formulation!r}; choose one of {FORMULATIONS}")
    if region.size != network.n_inputs:
        raise PrunemipError(
            f"the input region has {region.size} inputs but the network takes {network.n_inputs}"
        )
    if bounds is None:
        return
    if len(bounds.lower) != len(network.layers) or any(
        lo.shape != (layer.n_out,) for lo, layer in zip(bounds.lower, network.layers, strict=True)
    ):
        raise PrunemipError("the neuron bounds do not match the network's layer sizes")


def encode(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds | None = None,
    *,
    formulation: str = DEFAULT_FORMULATION,
) -> MipModel:
    """Encode ``network`` over ``region`` as a big-M MIP (objective zero; see ``with_margin_objective``).

    Args:
        network: the network.
        region: the input region (an L1 ball adds its lifted budget row, ``InputRegion.budget_split``).
        bounds: sound neuron bounds over the region; default interval arithmetic.
        formulation: how pre-activations enter the rows (see ``FORMULATIONS``).

    Returns:
        The model, with the map from every neuron to its columns and the encoding statistics.
    """
    start = time.perf_counter()
    _check_inputs(network, region, bounds, formulation)
    if bounds is None:
        bounds = interval_bounds(network, region)
    plans = _classify(network, region, bounds)
    builder = _Builder()
    n0 = network.n_inputs
    input_columns = builder.add_columns("x_", np.arange(n0), region.lower, region.upper)
    l1_columns = None
    split = region.budget_split()
    if split is not None:
        x0, p_upper, n_upper = split
        p = builder.add_columns("p_", np.arange(n0), np.zeros(n0), p_upper)
        n = builder.add_columns("n_", np.arange(n0), np.zeros(n0), n_upper)
        l1_columns = (p, n)
        ones = np.ones(n0)
        builder.add_rows(
            "split_",
            np.arange(n0),
            x0,
            x0,
            np.tile(np.arange(n0), 3),
            np.concatenate([input_columns, p, n]),
            np.concatenate([ones, -ones, ones]),
        )
        builder.add_rows(
            "l1_budget",
            np.array([""]),
            -np.inf,
            region.radius,
            np.zeros(2 * n0, dtype=np.int64),
            np.concatenate([p, n]),
            np.ones(2 * n0),
        )

    prev_columns = input_columns
    encodings = []
    last = len(network.layers) - 1
    for k, plan in enumerate(plans):
        encodings.append(_encode_layer(builder, k, k == last, plan, bounds, prev_columns, formulation))
        prev_columns = encodings[-1].output_column

    matrix = builder.matrix()
    integrality = _cat(builder.col_integer, bool)
    per_layer = tuple(
        {status.name.lower(): enc.count(status) for status in NeuronStatus} | {"neurons": enc.status.size}
        for enc in encodings
    )
    unstable_width = sum(
        float(np.sum((enc.upper - enc.lower)[enc.status == NeuronStatus.UNSTABLE])) for enc in encodings
    )
    stats = EncodingStats(
        rows=builder.n_rows,
        columns=builder.n_cols,
        nonzeros=int(matrix.nnz),
        binaries=int(np.count_nonzero(integrality)),
        unstable_neurons=bounds.n_unstable,
        weight_nonzeros=network.nnz,
        per_layer=per_layer,
        total_bigm_width=unstable_width,
        bounds_method=bounds.method,
        bounds_seconds=bounds.seconds,
        build_seconds=time.perf_counter() - start,
        bounds_stages=tuple(stage.to_dict() for stage in bounds.stages),
    )
    return MipModel(
        matrix=matrix,
        row_lower=_cat(builder.row_lower),
        row_upper=_cat(builder.row_upper),
        col_lower=_cat(builder.col_lower),
        col_upper=_cat(builder.col_upper),
        integrality=integrality,
        objective=np.zeros(builder.n_cols),
        objective_offset=0.0,
        maximize=True,
        input_columns=input_columns,
        output_columns=encodings[-1].output_column,
        layers=tuple(encodings),
        region=region,
        network=network,
        formulation=formulation,
        stats=stats,
        column_blocks=tuple(builder.col_blocks),
        row_blocks=tuple(builder.row_blocks),
        l1_columns=l1_columns,
    )


def _encode_layer(
    builder: _Builder,
    k: int,
    is_output: bool,
    plan: _LayerPlan,
    bounds: NeuronBounds,
    prev_columns: np.ndarray,
    formulation: str,
) -> LayerEncoding:
    """Columns and rows of layer ``k``'s live neurons."""
    status = plan.status
    n_out = status.size
    lower, upper = bounds.lower[k], bounds.upper[k]
    name = "logit_" if is_output else f"y{k + 1}_"
    output_column = np.full(n_out, -1, dtype=np.int64)
    preactivation_column = np.full(n_out, -1, dtype=np.int64)
    binary_column = np.full(n_out, -1, dtype=np.int64)

    # Continuous outputs: y = ẑ for active and linear neurons, y ∈ [0, u] for unstable ones.
    # Every logit gets a column so that outputs can be read back; constant ones are fixed.
    fixed = np.isin(status, (NeuronStatus.CONSTANT, NeuronStatus.INACTIVE))
    with_column = np.isin(status, _VARIABLE_STATUSES) | (fixed & is_output)
    post_lower, post_upper = bounds.post_activation(k)
    col_lower = np.where(fixed, plan.constant_low, post_lower)
    col_upper = np.where(fixed, plan.constant_high, post_upper)
    variable = np.flatnonzero(with_column)
    output_column[variable] = builder.add_columns(name, variable, col_lower[variable], col_upper[variable])

    linear = np.flatnonzero(np.isin(status, (NeuronStatus.ACTIVE, NeuronStatus.LINEAR)))
    if linear.size:
        local, cols, vals = _affine_entries(plan.weight[linear], prev_columns, output_column[linear], 1.0)
        builder.add_rows(
            f"lin{k + 1}_", linear, plan.bias_low[linear], plan.bias_high[linear], local, cols, vals
        )

    unstable = np.flatnonzero(status == NeuronStatus.UNSTABLE)
    if unstable.size:
        # Loosening a bound keeps the big-M rows valid; solvers drop coefficients ≤ TINY.
        low, up = np.minimum(lower[unstable], -2 * TINY), np.maximum(upper[unstable], 2 * TINY)
        if max(-low.min(), up.max()) >= HUGE:
            raise PrunemipError(
                f"layer {k + 1}: big-M values reach {max(-low.min(), up.max()):.3g}; bounds this wide make "
                "the MIP numerically meaningless: rescale the network or shrink the input region"
            )
        delta = builder.add_columns(
            f"d{k + 1}_", unstable, np.zeros(unstable.size), np.ones(unstable.size), True
        )
        binary_column[unstable] = delta
        y = output_column[unstable]
        n = unstable.size
        rows = np.arange(n)
        if formulation == "variable":
            zhat = builder.add_columns(f"z{k + 1}_", unstable, low, up)
            preactivation_column[unstable] = zhat
            local, cols, vals = _affine_entries(plan.weight[unstable], prev_columns, zhat, 1.0)
            builder.add_rows(
                f"def{k + 1}_", unstable, plan.bias_low[unstable], plan.bias_high[unstable], local, cols, vals
            )
            # y − ẑ ≥ 0
            builder.add_rows(
                f"ge{k + 1}_",
                unstable,
                0.0,
                np.inf,
                np.tile(rows, 2),
                np.concatenate([y, zhat]),
                np.concatenate([np.ones(n), -np.ones(n)]),
            )
            # y − ẑ − l δ ≤ −l
            builder.add_rows(
                f"lo{k + 1}_",
                unstable,
                -np.inf,
                -low,
                np.tile(rows, 3),
                np.concatenate([y, zhat, delta]),
                np.concatenate([np.ones(n), -np.ones(n), -low]),
            )
        else:
            # y − W h ≥ b
            local, cols, vals = _affine_entries(plan.weight[unstable], prev_columns, y, 1.0)
            builder.add_rows(f"ge{k + 1}_", unstable, plan.bias_low[unstable], np.inf, local, cols, vals)
            # y − W h − l δ ≤ b − l  (same affine part as the row above, plus δ)
            builder.add_rows(
                f"lo{k + 1}_",
                unstable,
                -np.inf,
                plan.bias_high[unstable] - low,
                np.concatenate([local, rows]),
                np.concatenate([cols, delta]),
                np.concatenate([vals, -low]),
            )
        # y − u δ ≤ 0
        builder.add_rows(
            f"up{k + 1}_",
            unstable,
            -np.inf,
            0.0,
            np.tile(rows, 2),
            np.concatenate([y, delta]),
            np.concatenate([np.ones(n), -up]),
        )

    return LayerEncoding(
        status=status.copy(),
        output_column=output_column,
        preactivation_column=preactivation_column,
        binary_column=binary_column,
        constant_value=plan.constant_value.copy(),
        lower=lower.copy(),
        upper=upper.copy(),
    )
