"""Optimisation-based bound tightening (OBBT) with HiGHS, and the progressive bounds pipeline.

``compute_bounds(network, region, method)`` runs the stages cheapest first, as MIPVerify
does (Tjeng et al., ICLR 2019): interval arithmetic (``ia``), linear relaxation by
backward substitution (``linear``; CROWN/DeepPoly), LP-based tightening (``lp``) and
MIP-based tightening of the last hidden layers (``mip``). Each stage only tightens, so
every stage's bounds are at least as tight as the previous one's. ``alpha`` (α-CROWN:
the linear stage with optimised lower ReLU slopes) is an opt-in stage after ``linear``,
not part of ``lp``, ``mip`` or ``auto``: on the dense 2x200 benchmark nets it leaves 1 %
fewer unstable neurons than ``linear`` for a median 5.5× its time, and on 11 of 12 images
checked the LP stage ended at the same counts, taking 0.13–68 s against α-CROWN's
0.02–0.31 s (``experiments/benchmarks/bounds.py --part quality``).

LP-based tightening, layer by layer (Fischetti & Jo, *Constraints* 2018; Badilla et al.,
arXiv 2312.16699): for layer ``k`` the network truncated after layer ``k`` — layers
``0 … k−1`` as they are, layer ``k``'s still-unstable neurons as identity outputs — is
encoded by the same :func:`~prunemip.encoders.bigm.encode` as the main MIP, with the
current bounds; its integrality is dropped, and ``min``/``max`` of each output column is
an LP over a relaxation of the network. One ``Highs`` instance per layer solves them all:
only the objective changes between LPs, so each starts from the previous optimal basis.
LPs are filtered and ordered as in Gleixner et al. ("Three enhancements for
optimization-based bound tightening", *J. Global Optim.* 67, 2017): every LP optimum and
every forward-pass point (the centre, any attack points) is a feasible point of all the
LPs of the layer, so a side whose bound is already within ``filter_tolerance`` of a seen
value cannot gain and is skipped, and sides that could make a neuron stable (no seen
value beyond 0) come first. After a layer, the later layers' linear bounds are recomputed
from the tightened ones.

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
far are kept. MIP-based tightening reads HiGHS's final dual bound (valid also at a time
limit) and widens it by the objective's sensitivity to HiGHS's feasibility tolerances
(``MipModel.tolerance_effect``) plus the dual feasibility tolerance times the columns'
widths: it is as sound as HiGHS's branch-and-bound, which is less than the LP stage's
guarantee, so it is opt-in.

MIP-based tightening decides stability first. A neuron that two inputs of the region show
on both sides of 0 (:mod:`prunemip.encoders.bounds.witnesses`: exact first-layer maximisers, then gradient
ascent per neuron) is unstable under any sound bounds, so it gets no stability MIP; every
other unstable neuron gets one MIP on the side no input has crossed, stopped as soon as the
dual bound proves the sign or an incumbent shows the other one (decide mode). Only then,
unless ``ObbtOptions.mip_stability_only``, are the remaining sides narrowed by MIPs solved
to optimality. Each MIP runs in a fresh HiGHS with its own time limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import highspy
import numpy as np
import scipy.sparse as sp

from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import NeuronBounds, gamma, interval_bounds
from prunemip.encoders.bounds.linear import alpha_bounds, linear_bounds
from prunemip.encoders.bounds.witnesses import witnessed_unstable
from prunemip.encoders.ideal_cuts import CutRows, IdealCutSeparator
from prunemip.encoders.mip_model import MipModel, NeuronStatus
from prunemip.errors import PrunemipError
from prunemip.network import Layer, Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve, to_highs
from prunemip.solvers.result import SolveStatus

#: The bounds methods, cheapest first; "auto" is the default progressive pipeline.
BOUNDS_METHODS: tuple[str, ...] = ("ia", "linear", "alpha", "lp", "mip")
DEFAULT_BOUNDS = "auto"
#: The LP formulation of OBBT: ẑ as a column (fewer nonzeros than substituting it) solved its
#: LPs in 23–25 ms against 30–31 ms (``experiments/benchmarks/obbt_lp_settings.py``).
LP_FORMULATION = "variable"

#: ``auto`` runs the LP stage only when the linear bounds leave at least this many unstable
#: neurons in the hidden layers that LP can tighten (layers ≥ 1), ...
AUTO_LP_MIN_UNSTABLE = 30
#: ... with a budget of this fraction of the attack's time limit, at most AUTO_LP_MAX_BUDGET s.
AUTO_LP_BUDGET_FRACTION = 0.1
AUTO_LP_MAX_BUDGET = 30.0


@dataclass(frozen=True)
class ObbtOptions:
    """Limits and switches of LP/MIP-based tightening."""

    time_per_lp: float = 2.0  #: seconds per LP (HiGHS time limit); an LP cut short tightens nothing
    budget: float = math.inf  #: seconds for the whole stage; bounds found so far are kept
    formulation: str = LP_FORMULATION
    filter_tolerance: float = 0.02  #: skip a side within this fraction of the width from a seen value
    mip_layers: int = 1  #: MIP-based tightening: how many of the last hidden layers
    time_per_mip: float = 10.0
    #: MIP stage: only the sides that could make a neuron stable (each MIP stopped once the sign
    #: is known); False also narrows the other sides, each MIP to optimality
    mip_stability_only: bool = False
    threads: int | None = 1
    simplex_strategy: int = 1  #: dual simplex: 23–25 ms per LP against 43 ms for primal (same script)
    #: LP stage: rounds of ideal-formulation cuts per LP (``encoders.ideal_cuts``; Anderson et al.
    #: 2020), each re-solved from the last basis; 0 keeps the big-M (triangle) relaxation alone
    cut_rounds: int = 0
    cuts_per_round: int = 20  #: the most violated cuts added per round (each row is as dense as a ẑ row)


# ----------------------------------------------------------------------- safe LP bounds
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
    Returns ``-inf`` when a column needed is unbounded.
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


# ----------------------------------------------------------------------- truncation
def truncated_network(
    network: Network, bounds: NeuronBounds, layer: int, rows: np.ndarray
) -> tuple[Network, NeuronBounds]:
    """Layers ``0 … layer−1`` plus ``rows`` of ``layer`` as identity outputs, and their bounds."""
    target = network.layers[layer]
    head = Layer.create(target.weight[rows], target.bias[rows], "identity")
    truncated = Network((*network.layers[:layer], head), network.input_spec)
    restricted = NeuronBounds(
        input_lower=bounds.input_lower,
        input_upper=bounds.input_upper,
        lower=(*bounds.lower[:layer], bounds.lower[layer][rows]),
        upper=(*bounds.upper[:layer], bounds.upper[layer][rows]),
        relu_layers=(*bounds.relu_layers[:layer], False),
        method=bounds.method,
        seconds=0.0,
    )
    return truncated, restricted


def _new_highs(options: ObbtOptions, **settings: object) -> highspy.Highs:
    """A silent, seeded ``Highs`` with ``options.threads`` and the given extra settings."""
    highs = highspy.Highs()
    settings = {"output_flag": False, "random_seed": 0, **settings}
    if options.threads is not None:
        settings["threads"] = int(options.threads)
    for name, value in settings.items():
        highs.setOptionValue(name, value)
    return highs


def _new_lp_highs(options: ObbtOptions) -> highspy.Highs:
    # Presolve off keeps the basis between LPs (presolve would discard it).
    return _new_highs(options, presolve="off", solver="simplex", simplex_strategy=options.simplex_strategy)


#: Statuses whose MIP dual bound is a valid bound (HiGHS's branch and bound ran, maybe cut short).
_BOUNDED_MIP = frozenset({
    SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT, SolveStatus.INTERRUPTED,
    SolveStatus.DECIDED_ABOVE, SolveStatus.DECIDED_AT_MOST,
})  # fmt: skip

#: Statuses of a stability MIP that know the sign (optimal, or stopped by its decision rule).
_DECIDED = frozenset({SolveStatus.OPTIMAL, SolveStatus.DECIDED_ABOVE, SolveStatus.DECIDED_AT_MOST})

#: A neuron side to bound: (local neuron index, +1 for min ẑ / −1 for min −ẑ).
Side = tuple[int, int]


@dataclass
class _Progress:
    """Counters of one tightening stage."""

    deadline: float
    solved: int = 0
    skipped: int = 0
    not_optimal: int = 0
    stabilized: int = 0
    unencodable: int = 0  #: layers skipped: their relaxation has numerically meaningless big-M values
    cuts: int = 0  #: ideal-formulation rows added (LP stage with ``cut_rounds``)
    undecided: int = 0  #: MIP stage: stability MIPs stopped by their time limit before the sign was known
    budget_exhausted: bool = False

    def out_of_time(self) -> bool:
        if time.perf_counter() >= self.deadline:
            self.budget_exhausted = True
        return self.budget_exhausted

    def details(self, prefix: str) -> dict[str, object]:
        return {
            f"{prefix}_solved": self.solved,
            f"{prefix}_skipped": self.skipped,
            f"{prefix}_not_optimal": self.not_optimal,
            "stabilized": self.stabilized,
            "budget_exhausted": self.budget_exhausted,
            **({"layers_skipped": self.unencodable} if self.unencodable else {}),
            **({"cuts": self.cuts} if self.cuts else {}),
            **({f"{prefix}_undecided": self.undecided} if self.undecided else {}),
        }


def _layer_model(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    layer: int,
    options: ObbtOptions,
    progress: _Progress,
) -> tuple[np.ndarray, MipModel | None]:
    """The unstable neurons of ``layer`` and the MIP of the network truncated to them
    (None when none is unstable, or when its big-M values are beyond solver precision)."""
    rows = np.flatnonzero(bounds.unstable(layer))
    if rows.size == 0:
        return rows, None
    truncated, restricted = truncated_network(network, bounds, layer, rows)
    try:
        return rows, encode(truncated, region, restricted, formulation=options.formulation)
    except PrunemipError:  # keep the bounds as they are
        progress.unencodable += 1
        return rows, None


def _apply_bound(
    lower: np.ndarray, upper: np.ndarray, neuron: int, side: float, bound: float, progress: _Progress
) -> None:
    """Tighten with a sound ``bound``: of ``ẑ`` from below (``side`` > 0) or of ``−ẑ`` (< 0)."""
    was_unstable = lower[neuron] < 0.0 < upper[neuron]
    if side > 0 and bound > lower[neuron]:
        lower[neuron] = min(bound, upper[neuron])
    elif side < 0 and -bound < upper[neuron]:
        upper[neuron] = max(-bound, lower[neuron])
    if was_unstable and not (lower[neuron] < 0.0 < upper[neuron]):
        progress.stabilized += 1


def _ordered_sides(seen_min: np.ndarray, seen_max: np.ndarray) -> tuple[list[Side], list[Side]]:
    """The neuron sides that could make their neuron stable (no seen value beyond 0 on that
    side), then the others; lower sides before upper ones, so that consecutive objectives
    stay alike."""
    lows, highs = seen_min >= 0, seen_max <= 0
    stabilizing = [(int(j), 1) for j in np.flatnonzero(lows)] + [(int(j), -1) for j in np.flatnonzero(highs)]
    rest = [(int(j), 1) for j in np.flatnonzero(~lows)] + [(int(j), -1) for j in np.flatnonzero(~highs)]
    return stabilizing, rest


def _tighten_layer_lp(
    model: MipModel,
    rows: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: ObbtOptions,
    progress: _Progress,
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

    stabilizing, rest = _ordered_sides(seen_min, seen_max)
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
            # solver; see _tighten_layer_mip), so each warm-started LP gets the limit on top of it.
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
        _apply_bound(lower, upper, neuron, side, bound, progress)


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


def _tighten_layer_mip(
    model: MipModel,
    rows: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: ObbtOptions,
    progress: _Progress,
    seen: np.ndarray,
) -> None:
    """Tighten ``lower``/``upper`` (the layer's, in place) at the unstable ``rows`` from
    HiGHS's MIP dual bounds of the truncated ``model``, widened for its tolerances.

    ``seen`` holds the layer's pre-activations at inputs of the region (one row a point). A
    side no input has crossed 0 on could make its neuron stable: its MIP comes first and stops
    as soon as the sign is known (the dual bound clears 0 by the tolerance margin, or an
    incumbent is beyond 0). The other sides only narrow the big-M interval: with
    ``options.mip_stability_only`` they are left to the LP stage, otherwise they are solved
    to optimality when the seen values leave room to gain.
    """
    if not model.integrality.any():
        # No binary left: the relaxation is the exact model and the LP stage is already exact.
        # (HiGHS then solves an LP and its MIP dual bound is meaningless: never read it.)
        return
    head = model.layers[-1]
    usable = head.status == NeuronStatus.LINEAR
    seen_min, seen_max = seen[:, rows].min(axis=0), seen[:, rows].max(axis=0)
    width = np.maximum(upper[rows] - lower[rows], 1e-12)
    widths = float(np.sum(model.col_upper - model.col_lower))
    settings = HighsOptions(threads=options.threads, mip_rel_gap=0.0)
    feasibility = settings.tolerance("mip_feasibility_tolerance")
    dual_tolerance = settings.tolerance("dual_feasibility_tolerance")
    stabilizing, rest = _ordered_sides(seen_min, seen_max)
    tasks = [(j, side, True) for j, side in stabilizing]
    if not options.mip_stability_only:
        tasks += [(j, side, False) for j, side in rest]
    for j, side, deciding in tasks:
        neuron = rows[j]
        if not usable[j] or lower[neuron] >= 0.0 or upper[neuron] <= 0.0:
            progress.skipped += 1
            continue
        seen_value, bound = (seen_min[j], lower[neuron]) if side > 0 else (-seen_max[j], -upper[neuron])
        if not deciding and seen_value - bound <= options.filter_tolerance * width[j]:
            progress.skipped += 1
            continue
        if progress.out_of_time():
            break
        cost = np.zeros(model.n_cols)
        cost[int(head.output_column[j])] = float(side)
        objective = model.with_objective(cost, maximize=False)
        margin = objective.tolerance_effect(feasibility, feasibility)
        margin += dual_tolerance * widths
        # Stop once the bound below, dual − margin − 1e-9·|dual|, is ≥ 0, or an incumbent is < 0.
        rule = DecisionRule(target=0.0, proof=margin * (1.0 + 1e-8) + 1e-12) if deciding else None
        # solve() builds a fresh HiGHS: its MIP solver measures time_limit on a clock that restarts
        # with every run, its LP solver on the object's total run time, so only a new object gives
        # every MIP the same limit in any version.
        limit = max(min(options.time_per_mip, progress.deadline - time.perf_counter()), 1e-3)
        result = solve(objective, replace(settings, time_limit=limit), decide=rule)
        dual = result.dual_bound
        consistent = result.objective is None or (
            dual is not None and dual <= result.objective + 1e-9 * (1.0 + abs(result.objective))
        )
        if dual is None or result.status not in _BOUNDED_MIP or not consistent:
            progress.not_optimal += 1
            continue
        progress.solved += 1
        progress.undecided += deciding and result.status not in _DECIDED
        _apply_bound(lower, upper, neuron, side, dual - margin - 1e-9 * abs(dual), progress)


def _with_layer(bounds: NeuronBounds, layer: int, lower: np.ndarray, upper: np.ndarray) -> NeuronBounds:
    lows, highs = list(bounds.lower), list(bounds.upper)
    lows[layer], highs[layer] = lower, upper
    return replace(bounds, lower=tuple(lows), upper=tuple(highs))


def _hidden_relu_layers(bounds: NeuronBounds) -> list[int]:
    return [k for k, relu in enumerate(bounds.relu_layers[:-1]) if relu]


def _lp_layers(bounds: NeuronBounds) -> list[int]:
    """The layers LP tightening works on: layer 0 over a box or an L1 ball is already exact
    with linear bounds, so it starts at 1 after them."""
    first = 1 if any(stage.method == "linear" for stage in bounds.stages) else 0
    return [k for k in _hidden_relu_layers(bounds) if k >= first]


#: Tightens one layer's (lower, upper) in place at its unstable ``rows``, given the MIP of the
#: network truncated to them: ``(layer, rows, model, lower, upper, progress)``.
LayerTightener = Callable[[int, np.ndarray, MipModel, np.ndarray, np.ndarray, _Progress], None]


def _tighten_layers(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    layers: Sequence[int],
    options: ObbtOptions,
    stage: str,
    tighten_layer: LayerTightener,
) -> NeuronBounds:
    """Tighten ``layers`` in order, each followed by linear bounds of the later layers, as
    one stage named ``stage`` (counters prefixed ``lps``/``mips``) within ``options.budget``."""
    start = time.perf_counter()
    progress = _Progress(deadline=start + options.budget)
    current = bounds
    for k in layers:
        if progress.out_of_time():
            break
        lower, upper = current.lower[k].copy(), current.upper[k].copy()
        rows, model = _layer_model(network, region, current, k, options, progress)
        if model is not None:
            tighten_layer(k, rows, model, lower, upper, progress)
        current = linear_bounds(network, region, _with_layer(current, k, lower, upper), start_layer=k + 1)
    seconds = time.perf_counter() - start
    return bounds.tightened(current.lower, current.upper, stage, seconds, **progress.details(f"{stage}s"))


def lp_tighten(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    options: ObbtOptions | None = None,
    *,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """Tighten the unstable neurons of every hidden layer by LP (see the module docstring).

    ``points`` are inputs of the region (e.g. attack points) whose forward passes let the
    LPs that cannot gain be skipped; the region's centre is always used.
    """
    options = options or ObbtOptions()
    seen = _seen_values(network, region, points)
    layers = _lp_layers(bounds)
    return _tighten_layers(
        network, region, bounds, layers, options, "lp",
        lambda k, rows, model, lower, upper, progress: _tighten_layer_lp(
            model, rows, lower, upper, options, progress, seen[k]
        ),
    )  # fmt: skip


def mip_tighten(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    options: ObbtOptions | None = None,
    *,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """Tighten the unstable neurons of the last ``options.mip_layers`` hidden layers by MIP
    (layer 0 is exact already).

    Which sides could make a neuron stable is read off inputs of the region: the centre,
    ``points`` and the witnesses of :func:`prunemip.encoders.bounds.witnesses.witnessed_unstable` (the
    extreme pre-activations its search finds); a neuron they show on both sides of 0 gets no
    stability MIP.
    """
    options = options or ObbtOptions()
    hidden = _hidden_relu_layers(bounds)
    layers = [k for k in (hidden[-options.mip_layers :] if options.mip_layers > 0 else []) if k > 0]
    seen = _seen_values(network, region, points)
    if layers:  # the witness search only matters to layers that get MIPs
        witnessed = witnessed_unstable(network, region, bounds)
        for k, highest, lowest in zip(witnessed.layers, witnessed.highest, witnessed.lowest, strict=True):
            seen[k] = np.vstack([seen[k], highest, lowest])
    return _tighten_layers(
        network, region, bounds, layers, options, "mip",
        lambda k, rows, model, lower, upper, progress: _tighten_layer_mip(
            model, rows, lower, upper, options, progress, seen[k]
        ),
    )  # fmt: skip


def _seen_values(network: Network, region: InputRegion, points: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per layer, the pre-activations at the region's centre and at ``points`` projected onto
    the region (one row a point)."""
    inputs = [region.midpoint, *(region.project(np.asarray(p, dtype=np.float64).reshape(-1)) for p in points)]
    return [np.atleast_2d(z) for z in network.pre_activations(np.vstack(inputs))]


# ----------------------------------------------------------------------- the pipeline
def lp_pays(bounds: NeuronBounds) -> bool:
    """The ``auto`` rule: LP tightening when enough neurons it can tighten are unstable."""
    candidates = sum(int(np.count_nonzero(bounds.unstable(k))) for k in _lp_layers(bounds))
    return candidates >= AUTO_LP_MIN_UNSTABLE


def auto_lp_budget(time_limit: float | None) -> float:
    """The ``auto`` LP budget: a fraction of the attack's time limit, capped."""
    if time_limit is None or not math.isfinite(time_limit):
        return AUTO_LP_MAX_BUDGET
    return min(AUTO_LP_BUDGET_FRACTION * time_limit, AUTO_LP_MAX_BUDGET)


def continue_bounds(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    method: str,
    *,
    options: ObbtOptions | None = None,
    time_limit: float | None = None,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """The stages of ``method`` (``alpha``, ``lp``, ``mip`` or ``auto``) after the linear bounds ``bounds``.

    ``auto``: LP tightening only if :func:`lp_pays`, with a budget of
    :func:`auto_lp_budget` of ``time_limit`` unless ``options`` set one.
    """
    if method == "alpha":
        return alpha_bounds(network, region, bounds)
    if method == DEFAULT_BOUNDS:
        if not lp_pays(bounds):
            return bounds
        options = options or ObbtOptions()
        if not math.isfinite(options.budget):
            options = replace(options, budget=auto_lp_budget(time_limit))
        return lp_tighten(network, region, bounds, options, points=points)
    bounds = lp_tighten(network, region, bounds, options, points=points)
    if method == "mip":
        bounds = mip_tighten(network, region, bounds, options, points=points)
    return bounds


def compute_bounds(
    network: Network,
    region: InputRegion,
    method: str = DEFAULT_BOUNDS,
    *,
    options: ObbtOptions | None = None,
    time_limit: float | None = None,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """Sound neuron bounds by the named method, running every cheaper stage first.

    ``ia``: interval arithmetic; ``linear``: + linear relaxation (CROWN/DeepPoly);
    ``alpha``: ``linear`` + optimised lower slopes (α-CROWN; not a stage of the next ones);
    ``lp``: ``linear`` + LP-based tightening of the unstable neurons; ``mip``: + MIP-based
    tightening of the last hidden layer(s); ``auto`` (the default): ``linear``, then
    ``lp`` only when :func:`lp_pays`, with a budget of :func:`auto_lp_budget` of
    ``time_limit`` (the attack's). ``options`` set the LP/MIP limits; ``points`` are
    region points (e.g. attack points) that help skip LPs that cannot gain.
    The result's ``stages`` give time, #unstable and Σ(u − l) per stage.
    """
    if method not in (*BOUNDS_METHODS, DEFAULT_BOUNDS):
        raise PrunemipError(
            f"unknown bounds method {method!r}; choose one of {', '.join((*BOUNDS_METHODS, DEFAULT_BOUNDS))}"
        )
    if region.size != network.n_inputs:
        raise PrunemipError(
            f"the input region has {region.size} inputs but the network takes {network.n_inputs}"
        )
    bounds = interval_bounds(network, region)
    if method == "ia":
        return bounds
    bounds = linear_bounds(network, region, bounds)
    if method == "linear":
        return bounds
    return continue_bounds(
        network, region, bounds, method, options=options, time_limit=time_limit, points=points
    )
