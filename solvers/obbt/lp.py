"""LP-based bound tightening with HiGHS, and the safe bound that makes it sound.

For each layer, the MIP of the network truncated to its unstable neurons
(:mod:`~prunemip.solvers.obbt.common`) loses its integrality, and ``min``/``max`` of each
output column is an LP over a relaxation of the network (Fischetti & Jo, *Constraints* 2018).
One ``Highs`` instance per layer solves them all: only the objective changes between LPs, so
each starts from the previous optimal basis. LPs are filtered and ordered as in Gleixner et
al. ("Three enhancements for optimization-based bound tightening", *J. Global Optim.* 67,
2017): every LP optimum and every forward-pass point is a feasible point of all the LPs of the
layer, so a side whose bound is already within ``filter_tolerance`` of a seen value cannot
gain and is skipped, and sides that could make a neuron stable come first. With
``cut_rounds``, each LP is re-solved with the most violated ideal-formulation cuts of its
optimum added (:mod:`prunemip.encoders.ideal_cuts`; Anderson et al., *Math. Programming*
183, 2020).

Soundness, independent of HiGHS's tolerances. An LP bound is never read off HiGHS's
objective value. For ``min cᵀv`` s.t. ``rl ≤ Av ≤ ru``, ``cl ≤ v ≤ cu`` (every column is
boxed), *any* row multipliers ``y`` give (Neumaier & Shcherbina, "Safe bounds in linear
and mixed-integer linear programming", *Math. Programming* 99, 2004)

    cᵀv = yᵀ(Av) + (c − Aᵀy)ᵀv ≥ Σ_r min(y_r rl_r, y_r ru_r) + Σ_i min(r_i cl_i, r_i cu_i)

(``y_r`` is set to 0 where the side it needs is infinite). HiGHS's row duals are used as
``y``; the residual ``r = c − Aᵀy`` and both sums are evaluated in float64 and widened by
a rigorous ``γ_n`` bound on their rounding (Higham §3.1). An inaccurate dual only makes the
bound weaker, never wrong, and the bound holds for every point that satisfies the rows
exactly — every point of the exact network does, since the rows are a relaxation of it
(the encoder folds constants and tiny weights into rigorously widened row bounds). An LP
that does not end optimal gives no tightening; on budget exhaustion the bounds found so
far are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import highspy
import numpy as np
import scipy.sparse as sp

from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.ideal_cuts import CutRows, IdealCutSeparator
from prunemip.encoders.mip_model import MipModel, NeuronStatus
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.rounding import gamma
from prunemip.solvers.highs import interruptible, to_highs
from prunemip.solvers.obbt.common import (
    ObbtOptions,
    Progress,
    apply_bound,
    hidden_relu_layers,
    ordered_sides,
    seen_values,
    tighten_layers,
)


@dataclass(frozen=True, eq=False)
class _LpData:
    """The arrays of a relaxation's LP, and what the safe bound needs of them."""

    transposed: sp.csr_matrix  #: Aᵀ
    abs_transposed: sp.csr_matrix  #: |A|ᵀ
    col_terms: np.ndarray  #: entries per column of A (for γ)
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray

    @classmethod
    def of(cls, model: MipModel) -> _LpData:
        transposed = model.matrix.T.tocsr()
        return cls(
            transposed=transposed,
            abs_transposed=abs(transposed),
            col_terms=np.diff(model.matrix.indptr),
            row_lower=model.row_lower,
            row_upper=model.row_upper,
            col_lower=model.col_lower,
            col_upper=model.col_upper,
        )

    def with_rows(self, cuts: CutRows) -> _LpData:
        """The same LP with the rows ``cuts.matrix · v ≤ cuts.upper`` appended."""
        return _LpData(
            transposed=sp.hstack([self.transposed, cuts.matrix.T], format="csr"),
            abs_transposed=sp.hstack([self.abs_transposed, abs(cuts.matrix.T)], format="csr"),
            col_terms=self.col_terms + np.diff(cuts.matrix.tocsc().indptr),
            row_lower=np.concatenate([self.row_lower, np.full(cuts.count, -np.inf)]),
            row_upper=np.concatenate([self.row_upper, cuts.upper]),
            col_lower=self.col_lower,
            col_upper=self.col_upper,
        )


def safe_lower_bound(data: _LpData, cost: np.ndarray, row_dual: np.ndarray) -> float:
    """A rigorous lower bound of ``min costᵀv`` over the LP, from any row multipliers.

    Neumaier & Shcherbina (2004): ``costᵀv ≥ Σ_r min(y_r rl_r, y_r ru_r) + Σ_i min(r_i cl_i,
    r_i cu_i)`` with ``r = cost − Aᵀy``, for every ``y`` and every ``v`` with ``rl ≤ Av ≤ ru``
    and ``cl ≤ v ≤ cu``; float64 rounding of every term is bounded by ``γ_n`` and added.

    Args:
        data: the LP's rows and column bounds.
        cost: the objective ``c`` (one entry per column).
        row_dual: the multipliers ``y`` (one per row; HiGHS's row duals, or any others).

    Returns:
        A lower bound of ``costᵀv`` over the LP's feasible set; ``-inf`` when a column
        needed is unbounded.
    """
    y = np.asarray(row_dual, dtype=np.float64)
    y = np.where(np.isfinite(y), y, 0.0)
    # A positive multiplier uses the row's lower side, a negative one its upper side.
    y = np.where((y > 0) & ~np.isfinite(data.row_lower), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(data.row_upper), 0.0, y)
    side = np.where(y > 0, data.row_lower, data.row_upper)
    row_terms = np.where(y != 0.0, y * np.where(np.isfinite(side), side, 0.0), 0.0)
    residual = cost - data.transposed @ y
    residual_error = gamma(data.col_terms + 1) * (np.abs(cost) + data.abs_transposed @ np.abs(y))
    lo, hi = data.col_lower, data.col_upper
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return -math.inf
    col_terms = np.minimum(residual * lo, residual * hi)
    magnitude = np.maximum(np.abs(lo), np.abs(hi))
    total = float(np.sum(row_terms) + np.sum(col_terms))
    error = float(residual_error @ magnitude) + float(gamma(y.size + lo.size + 2)) * float(
        np.sum(np.abs(row_terms)) + np.sum(np.abs(col_terms))
    )
    return total - 2.0 * error - 1e-15 * abs(total)


def _new_lp_highs(options: ObbtOptions) -> highspy.Highs:
    """A silent, seeded ``Highs`` for warm-started simplex LPs with ``options.threads``, whose
    simplex stops when Ctrl-C asks or ``options.cancel`` returns True."""
    highs = highspy.Highs()
    # Presolve off keeps the basis between LPs (presolve would discard it).
    settings: dict[str, object] = {
        "output_flag": False,
        "random_seed": 0,
        "presolve": "off",
        "solver": "simplex",
        "simplex_strategy": options.simplex_strategy,
    }
    if options.threads is not None:
        settings["threads"] = int(options.threads)
    for name, value in settings.items():
        highs.setOptionValue(name, value)
    interruptible(highs.cbSimplexInterrupt, options.cancel)
    return highs


def _tighten_layer_lp(
    model: MipModel,
    rows: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: ObbtOptions,
    progress: Progress,
    seen: np.ndarray,
) -> None:
    """Tighten ``lower``/``upper`` (the layer's, in place) at the unstable ``rows`` by one LP
    per neuron side of the truncated ``model``; ``seen`` holds the layer's pre-activations at
    region points (values every LP can reach: one row a point)."""
    head = model.layers[-1]
    columns = head.output_column
    usable = head.status == NeuronStatus.LINEAR
    relaxed = replace(
        model,
        integrality=np.zeros(model.n_cols, dtype=bool),
        objective=np.zeros(model.n_cols),
        maximize=False,
    )
    data = _LpData.of(relaxed)
    separator = IdealCutSeparator(relaxed) if options.cut_rounds > 0 else None
    highs = _new_lp_highs(options)
    to_highs(relaxed, highs)
    seen_min, seen_max = seen[:, rows].min(axis=0), seen[:, rows].max(axis=0)

    width = np.maximum(upper[rows] - lower[rows], 1e-12)

    def can_gain(j: int, side: int) -> bool:
        if side > 0:
            return seen_min[j] - lower[rows[j]] > options.filter_tolerance * width[j]
        return upper[rows[j]] - seen_max[j] > options.filter_tolerance * width[j]

    stabilizing, rest = ordered_sides(seen_min, seen_max)
    previous: int | None = None
    for j, side in stabilizing + rest:
        if not usable[j]:
            continue
        neuron = rows[j]
        if upper[neuron] <= 0.0 or lower[neuron] >= 0.0 or not can_gain(j, side):
            # Stable by now (its other side does not matter to the MIP), or no gain possible.
            progress.skipped += 1
            continue
        if progress.out_of_time():
            break
        column = int(columns[j])
        if previous is not None and previous != column:
            highs.changeColCost(previous, 0.0)
        highs.changeColCost(column, float(side))
        previous = column
        cost = np.zeros(relaxed.n_cols)
        cost[column] = float(side)
        bound, values = -math.inf, None
        for cut_round in range(1 + options.cut_rounds):
            remaining = progress.deadline - time.perf_counter()
            if cut_round and remaining <= 0.0:
                break
            # HiGHS's simplex measures time_limit on the object's total run time (unlike its MIP
            # solver; see solvers/obbt/mip.py), so each warm-started LP gets the limit on top of it.
            highs.setOptionValue(
                "time_limit", highs.getRunTime() + max(min(options.time_per_lp, remaining), 1e-3)
            )
            highs.run()
            if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                break
            solution = highs.getSolution()
            values = np.asarray(solution.col_value, dtype=np.float64)
            bound = max(bound, safe_lower_bound(data, cost, np.asarray(solution.row_dual, dtype=np.float64)))
            if bound >= 0.0 or separator is None or cut_round == options.cut_rounds:
                break  # stable from this side (or no cuts asked for): more rows cannot matter
            cuts = separator.separate(values, options.cuts_per_round)
            if cuts is None or not _add_rows(highs, cuts):
                break
            data = data.with_rows(cuts)
            progress.cuts += cuts.count
        if values is None:
            progress.not_optimal += 1
            continue
        progress.solved += 1
        values = values[columns]
        seen_min = np.minimum(seen_min, np.where(usable, values, np.inf))
        seen_max = np.maximum(seen_max, np.where(usable, values, -np.inf))
        apply_bound(lower, upper, neuron, side, bound, progress)


def _add_rows(highs: highspy.Highs, cuts: CutRows) -> bool:
    """Append the rows ``cuts.matrix · v ≤ cuts.upper`` to ``highs``; False if HiGHS refused them
    (its rows then still match the safe bound's data, which must not take the cuts either)."""
    matrix = cuts.matrix
    status = highs.addRows(
        cuts.count,
        np.full(cuts.count, -highspy.kHighsInf),
        cuts.upper,
        int(matrix.nnz),
        matrix.indptr[:-1].astype(np.int32),
        matrix.indices.astype(np.int32),
        matrix.data,
    )
    return status == highspy.HighsStatus.kOk


def lp_layers(bounds: NeuronBounds) -> list[int]:
    """The layers LP tightening works on: the hidden ReLU layers, from layer 1 once linear
    bounds ran (layer 0 over a box or an L1 ball is then exact already).

    Args:
        bounds: the bounds to tighten (their stages tell whether linear bounds ran).

    Returns:
        The layer indices, ascending.
    """
    first = 1 if any(stage.method == "linear" for stage in bounds.stages) else 0
    return [k for k in hidden_relu_layers(bounds) if k >= first]


def lp_tighten(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    options: ObbtOptions | None = None,
    *,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """Tighten the unstable neurons of every hidden layer by LP (see the module docstring).

    Args:
        network: the network.
        region: the input region.
        bounds: sound bounds to start from (usually linear ones).
        options: the LP limits and switches (default :class:`ObbtOptions`).
        points: inputs of the region (e.g. attack points) whose forward passes let the LPs
            that cannot gain be skipped; the region's centre is always used.

    Returns:
        ``bounds`` tightened, with an ``lp`` stage appended (LPs solved/skipped, budget hit).
    """
    options = options or ObbtOptions()
    seen = seen_values(network, region, points)
    return tighten_layers(network, region, bounds, lp_layers(bounds), options, "lp", _tighten_layer_lp, seen)
