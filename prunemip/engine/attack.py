"""Adversarial examples by MIP: maximise the logit margin ``ẑ_t − ẑ_y`` over an input region.

Targeted: one target class ``t``. Untargeted: targets in order of the clean logits
(runner-up first), as in MIPVerify (Tjeng et al., ICLR 2019). Modes:

* ``decide``: stop at the first incumbent with margin > 0 or once the dual bound proves
  margin ≤ 0 (Cacciola et al. 2023's decision version); untargeted stops at the first
  target that yields an adversarial example.
* ``optimize``: the best margin, proven optimal, over every target.

Every witness is pulled exactly into the region and re-checked by a float64 forward pass
of the same network; the reported margin is the forward pass's, not the solver's
(:mod:`prunemip.engine.results`; the per-target MIPs and their verdicts:
:mod:`prunemip.engine.targets`).

The pipeline, cheapest first: a quick gradient attack (:mod:`prunemip.engine.falsify`) whose points
seed HiGHS — and which ends a decide-mode search at once when one of them is adversarial;
neuron bounds by :func:`~prunemip.solvers.bounds.compute_bounds` (``bounds=`` a method name,
default ``"auto"``: interval → linear relaxation → LP only when it pays); in decide mode a
target whose margin the linear relaxation already bounds by ``≤ −τ`` is robust without a
MIP; then one MIP per remaining target.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from prunemip.devices import check_device
from prunemip.encoders.bigm import DEFAULT_FORMULATION, encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.linear import output_upper_bounds
from prunemip.engine.falsify import FalsifyOptions, FalsifyResult, falsify, margin_rows
from prunemip.engine.results import (
    MODES,
    AttackResult,
    AttackStatus,
    Mode,
    TargetOutcome,
    Witness,
    best_witness,
    check_witness,
    overall_status,
)
from prunemip.engine.targets import (
    ROBUST_TOLERANCE,
    AttackContext,
    TargetMip,
    proven_by_bounds,
    settle_unknown,
    target_order,
)
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import ObbtOptions, compute_bounds, continue_bounds
from prunemip.solvers.highs import HighsOptions
from prunemip.solvers.methods import BOUNDS_METHODS, DEFAULT_BOUNDS

__all__ = [
    "MODES",
    "ROBUST_TOLERANCE",
    "SEARCHED_REGION_HIGHS",
    "AttackOptions",
    "AttackResult",
    "AttackStatus",
    "Mode",
    "TargetOutcome",
    "Witness",
    "check_witness",
    "find_adversarial_example",
    "target_order",
]

#: HiGHS settings of a decide-mode MIP once the gradient attack has searched the region for an
#: adversarial input: no RINS or RENS sub-MIPs. They look for better incumbents; a MIP that
#: only has to prove a margin ≤ −τ spends most of its time in them (measured:
#: ``experiments/benchmarks/README.md``, solve time). Without a gradient attack they find the
#: adversarial inputs, so HiGHS keeps them. ``AttackOptions.highs.extra`` overrides these.
SEARCHED_REGION_HIGHS: dict[str, Any] = {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False}


@dataclass(frozen=True)
class AttackOptions:
    """How :func:`find_adversarial_example` searches.

    ``highs.time_limit`` is the budget of the whole attack (gradient attack, bounds and
    MIPs), shared by the targets in turn.
    """

    mode: Mode = "decide"
    #: precomputed bounds, or a method of :func:`~prunemip.solvers.bounds.compute_bounds`
    bounds: NeuronBounds | str = DEFAULT_BOUNDS
    bounds_options: ObbtOptions | None = None  #: the LP/MIP bounds stages' limits
    formulation: str = DEFAULT_FORMULATION
    highs: HighsOptions = field(default_factory=HighsOptions)
    #: the gradient attack's settings; True: the defaults, seeded with ``highs.random_seed``; False: skip it
    pgd: FalsifyOptions | bool = True
    #: the least τ of a "robust" proof (margin ≤ −τ); HiGHS's tolerances can raise it
    robust_tolerance: float = ROBUST_TOLERANCE
    device: str = "cpu"  #: where the gradient attack's torch work runs: cpu, or cuda


def find_adversarial_example(
    network: Network,
    x0: np.ndarray,
    label: int,
    region: InputRegion | None = None,
    *,
    norm: str = "linf",
    radius: float | None = None,
    target: int | None = None,
    start_points: Sequence[np.ndarray] = (),
    options: AttackOptions | None = None,
) -> AttackResult:
    """Search the region around ``x0`` for an input classified other than ``label``.

    "robust" means every margin was proven ≤ −τ — by HiGHS, with τ the larger of
    ``options.robust_tolerance`` and the margin's sensitivity to HiGHS's tolerances, or in
    decide mode by the rigorous linear relaxation bound; a best margin within τ of 0 is
    "unknown". Decide-mode MIPs after the gradient attack run with
    :data:`SEARCHED_REGION_HIGHS` under ``options.highs.extra``.

    Args:
        network: the network attacked.
        x0: the clean input.
        label: its true class.
        region: the input region; without it, the ``norm`` ball of ``radius`` around ``x0``
            intersected with the network's input range.
        norm: ``"linf"`` or ``"l1"`` (without ``region``).
        radius: the ball's radius (without ``region``).
        target: the target class; None is untargeted.
        start_points: inputs that seed the MIP (projected into the region); ``x0`` and the
            gradient attack's points always do.
        options: how to search (default :class:`AttackOptions`).

    Returns:
        The attack's status, its verified witness (if any) and per-target outcomes.
    """
    start = time.perf_counter()
    options = options or AttackOptions()
    mode = options.mode
    if mode not in MODES:
        raise PrunemipError(f"unknown mode {mode!r}; choose one of {MODES}")
    check_device(options.device)
    point = np.asarray(x0, dtype=np.float64).reshape(-1)
    if point.size != network.n_inputs:
        raise PrunemipError(f"the input has {point.size} values but the network takes {network.n_inputs}")
    n_classes = network.n_outputs
    try:
        label = operator.index(label)
        target = None if target is None else operator.index(target)
    except TypeError:
        raise PrunemipError(
            f"the label and target must be integer class indices, got {label!r} and {target!r}"
        ) from None
    if not 0 <= label < n_classes:
        raise PrunemipError(f"label {label} is not a class of a network with {n_classes} outputs")
    if target is not None and (not 0 <= target < n_classes or target == label):
        raise PrunemipError(f"target {target} must be a class other than the label {label}")
    if region is None:
        if radius is None:
            raise PrunemipError("give an input region, or a norm and a radius")
        spec = network.input_spec
        region = InputRegion.ball(norm, point, radius, spec.lower, spec.upper)
    highs = options.highs

    logits = network.forward(point)
    prediction = int(np.argmax(logits))
    targets = [target] if target is not None else target_order(logits, label)

    def decided_early(
        status: AttackStatus,
        witness: Witness | None,
        bounds_seconds: float = 0.0,
        pgd_seconds: float = 0.0,
        pgd_margin: float | None = None,
    ) -> AttackResult:
        """A result settled before any MIP was built."""
        effort = (bounds_seconds, time.perf_counter() - start, pgd_seconds, pgd_margin)
        return AttackResult(status, label, prediction, logits, mode, region, witness, (), None, *effort)

    if prediction != label:
        witness = check_witness(network, region, point, prediction, label) if region.contains(point) else None
        return decided_early("misclassified", witness)

    context = AttackContext(network, region, label, mode, start + highs.time_limit, options.robust_tolerance)
    starts = [point, *(region.project(p) for p in start_points)]
    # 1. Cheap bounds (up to the linear relaxation). In decide mode, a target whose margin
    #    they bound by ≤ −τ needs neither the gradient attack nor a MIP (not with bare
    #    interval bounds: the plain baseline).
    bounds = options.bounds
    method = bounds.method if isinstance(bounds, NeuronBounds) else bounds
    if method not in (*BOUNDS_METHODS, DEFAULT_BOUNDS):
        raise PrunemipError(f"unknown bounds method {method!r}; choose one of {BOUNDS_METHODS} or 'auto'")
    shortcut = mode == "decide" and method != "ia"
    if not isinstance(bounds, NeuronBounds):
        bounds = compute_bounds(network, region, "ia" if method == "ia" else "linear")
    proven = _linear_margin_bounds(context, bounds, targets) if shortcut else {}
    open_targets = [t for t in targets if proven.get(t, 0.0) > -options.robust_tolerance]
    # 2. The gradient attack on the targets still open; in decide mode an adversarial point ends it.
    quick = _gradient_attack(context, open_targets, starts, options)
    pgd_seconds = 0.0 if quick is None else quick.seconds
    pgd_margin = None if quick is None else float(np.max(quick.slacks))
    if quick is not None:
        by_margin = np.argsort(-quick.slacks, kind="stable")
        starts += [point for point in (quick.points[i] for i in by_margin) if point is not None]
        if mode == "decide" and quick.found is not None:
            witness = context.witness(quick.points[quick.found], open_targets[quick.found])
            if witness.is_adversarial:
                return decided_early("adversarial", witness, bounds.seconds, pgd_seconds, pgd_margin)
    # 3. Tighter bounds, only while a target is still open, so before any MIP: "alpha", "lp" and
    #    "mip" always; "auto" when the LP stage pays (bounds.lp_pays). No MIP is ever restarted.
    if open_targets and method not in ("ia", "linear") and bounds.method == "linear":
        budget = max(context.remaining(), 0.0)
        bounds = continue_bounds(
            network, region, bounds, method, options=options.bounds_options, time_limit=budget, points=starts
        )
        proven = _linear_margin_bounds(context, bounds, targets) if shortcut else {}
    # 4. One MIP per target still open, in order.
    model = encode(network, region, bounds, formulation=options.formulation)
    if mode == "decide" and quick is not None:
        highs = replace(highs, extra={**SEARCHED_REGION_HIGHS, **highs.extra})
    outcomes: list[TargetOutcome] = []
    mips: dict[int, TargetMip] = {}
    for candidate in targets:
        if candidate in proven and proven[candidate] <= -options.robust_tolerance:
            outcomes.append(proven_by_bounds(candidate, proven[candidate], options.robust_tolerance))
            continue
        if context.remaining() <= 0:
            break
        mips[candidate] = TargetMip.of(model, context, candidate, starts)
        outcomes.append(mips[candidate].solve(highs))
        if mode == "decide" and outcomes[-1].status == "adversarial":
            break
    # 5. Targets HiGHS left "unknown" (finished within what its tolerances can move the margin)
    #    are solved again with tighter tolerances, once every target has had its first solve.
    outcomes = settle_unknown(outcomes, mips, highs, context)
    return AttackResult(
        status=overall_status(outcomes, len(targets)),
        label=label,
        clean_prediction=prediction,
        clean_logits=logits,
        mode=mode,
        region=region,
        witness=best_witness(outcomes),
        targets=tuple(outcomes),
        encoding=model.stats,
        bounds_seconds=bounds.seconds,
        total_seconds=time.perf_counter() - start,
        pgd_seconds=pgd_seconds,
        pgd_margin=pgd_margin,
    )


def _gradient_attack(
    context: AttackContext, targets: list[int], starts: list[np.ndarray], options: AttackOptions
) -> FalsifyResult | None:
    """The falsifier on the margins of ``targets`` (one conjunction each, in order) from ``starts``
    until the deadline, stopping at the first adversarial point in decide mode; None when it is
    skipped (no target, ``options.pgd`` False, or a region of one point)."""
    region = context.region
    if options.pgd is False or not targets or not np.any(region.upper > region.lower):
        return None
    settings = (
        options.pgd
        if isinstance(options.pgd, FalsifyOptions)
        else FalsifyOptions(seed=options.highs.random_seed)
    )
    network = context.network
    conjunctions = [margin_rows(network.n_outputs, context.label, t) for t in targets]
    return falsify(
        network,
        region,
        conjunctions,
        settings,
        starts=starts,
        deadline=context.deadline,
        device=options.device,
        stop_at_first=context.mode == "decide",
    )


def _linear_margin_bounds(
    context: AttackContext, bounds: NeuronBounds, targets: list[int]
) -> dict[int, float]:
    """Rigorous upper bounds of ``ẑ_t − ẑ_y`` per target by the linear relaxation of ``bounds``."""
    if not targets:
        return {}
    network = context.network
    coefficients = np.zeros((len(targets), network.n_outputs))
    coefficients[np.arange(len(targets)), targets] = 1.0
    coefficients[:, context.label] -= 1.0
    upper = output_upper_bounds(network, context.region, bounds, coefficients)
    if upper is None:
        return {}
    return {t: float(u) for t, u in zip(targets, upper, strict=True) if np.isfinite(u)}
