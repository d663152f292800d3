"""MIP-based bound tightening of the last hidden layers: stability first, then widths.

A neuron that two inputs of the region show on both sides of 0
(:mod:`prunemip.encoders.bounds.witnesses`: exact first-layer maximisers, then gradient ascent
per neuron) is unstable under any sound bounds, so it gets no stability MIP; every other
unstable neuron gets one MIP on the side no input has crossed, stopped as soon as the dual
bound proves the sign or an incumbent shows the other one (decide mode). Only then, unless
``ObbtOptions.mip_stability_only``, are the remaining sides narrowed by MIPs solved to
optimality. Each MIP is the truncated network of :mod:`~prunemip.solvers.obbt.common` with
its binaries kept, and runs in a fresh HiGHS with its own time limit.

Soundness: a bound is HiGHS's final dual bound (valid also at a time limit), widened by the
objective's sensitivity to HiGHS's feasibility tolerances (``MipModel.tolerance_effect``)
plus the dual feasibility tolerance times the columns' widths. It is as sound as HiGHS's
branch-and-bound, which is less than the LP stage's guarantee
(:func:`~prunemip.solvers.obbt.lp.safe_lower_bound`), so the stage is opt-in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.witnesses import witnessed_unstable
from prunemip.encoders.mip_model import MipModel, NeuronStatus
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve
from prunemip.solvers.obbt.common import (
    ObbtOptions,
    Progress,
    apply_bound,
    hidden_relu_layers,
    ordered_sides,
    seen_values,
    tighten_layers,
)
from prunemip.solvers.result import SolveStatus

#: Statuses whose MIP dual bound is a valid bound (HiGHS's branch and bound ran, maybe cut short).
_BOUNDED_MIP = frozenset(
    {
        SolveStatus.OPTIMAL,
        SolveStatus.TIME_LIMIT,
        SolveStatus.INTERRUPTED,
        SolveStatus.DECIDED_ABOVE,
        SolveStatus.DECIDED_AT_MOST,
    }
)

#: Statuses of a stability MIP that know the sign (optimal, or stopped by its decision rule).
_DECIDED = frozenset({SolveStatus.OPTIMAL, SolveStatus.DECIDED_ABOVE, SolveStatus.DECIDED_AT_MOST})


def _tighten_layer_mip(
    model: MipModel,
    rows: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: ObbtOptions,
    progress: Progress,
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
    stabilizing, rest = ordered_sides(seen_min, seen_max)
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
        apply_bound(lower, upper, neuron, side, dual - margin - 1e-9 * abs(dual), progress)


def mip_tighten(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    options: ObbtOptions | None = None,
    *,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """Tighten the unstable neurons of the last ``options.mip_layers`` hidden layers by MIP
    (layer 0 is exact already; see the module docstring).

    Which sides could make a neuron stable is read off inputs of the region: the centre,
    ``points`` and the witnesses of :func:`prunemip.encoders.bounds.witnesses.witnessed_unstable`
    (the extreme pre-activations its search finds); a neuron they show on both sides of 0
    gets no stability MIP.

    Args:
        network: the network.
        region: the input region.
        bounds: sound bounds to start from (usually LP ones).
        options: the MIP limits and switches (default :class:`ObbtOptions`).
        points: inputs of the region (e.g. attack points) known to the stability decisions.

    Returns:
        ``bounds`` tightened, with a ``mip`` stage appended (MIPs solved/skipped/undecided).
    """
    options = options or ObbtOptions()
    hidden = hidden_relu_layers(bounds)
    layers = [k for k in (hidden[-options.mip_layers :] if options.mip_layers > 0 else []) if k > 0]
    seen = seen_values(network, region, points)
    if layers:  # the witness search only matters to layers that get MIPs
        witnessed = witnessed_unstable(network, region, bounds)
        for k, highest, lowest in zip(witnessed.layers, witnessed.highest, witnessed.lowest, strict=True):
            seen[k] = np.vstack([seen[k], highest, lowest])
    return tighten_layers(network, region, bounds, layers, options, "mip", _tighten_layer_mip, seen)
