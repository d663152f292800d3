"""Adversarial examples: the margin ``ẑ_t − ẑ_y`` over an input region, decided or maximised.

Targeted: one target class ``t``. Untargeted: targets in order of the clean logits
(runner-up first), as in MIPVerify (Tjeng et al., ICLR 2019). The attack is a
:class:`~prunemip.engine.spec.Spec` with one strict row ``y_label − y_t < 0`` per target,
answered by the engine (:func:`~prunemip.engine.decide.decide`): cheap bounds, the
gradient attack (:mod:`prunemip.engine.falsify`) whose points seed HiGHS, branch and bound on
networks with many unstable ReLUs, then one MIP per target still open. Modes:

* ``decide``: stop at the first target with margin > 0, or once every target's margin is
  proven ≤ −τ (by the linear relaxation, branch and bound or HiGHS's dual bound; Cacciola
  et al. 2023's decision version);
* ``optimize``: the best margin, proven optimal, over every target (MIPs only).

Every witness is pulled exactly into the region and re-checked by a float64 forward pass
of the same network; the reported margin is the forward pass's, not the solver's
(:mod:`prunemip.engine.results`).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from prunemip.devices import check_device
from prunemip.encoders.bigm import DEFAULT_FORMULATION, encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.engine.decide import (
    SEARCHED_REGION_HIGHS,
    Decision,
    EngineOptions,
    Outcome,
    decide,
)
from prunemip.engine.falsify import FalsifyOptions
from prunemip.engine.mip import not_solved
from prunemip.engine.progress import ProgressHook
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
from prunemip.engine.slack import ROBUST_TOLERANCE
from prunemip.engine.spec import attack_spec
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import ObbtOptions
from prunemip.solvers.highs import HighsOptions
from prunemip.solvers.methods import DEFAULT_BOUNDS

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


def target_order(logits: np.ndarray, label: int) -> list[int]:
    """Every class but ``label``, most likely first (ties by class index).

    Args:
        logits: the clean logits.
        label: the true class.

    Returns:
        The classes to try, in order.
    """
    order = np.lexsort((np.arange(logits.size), -logits))
    return [int(c) for c in order if c != label]


@dataclass(frozen=True)
class AttackOptions:
    """How :func:`find_adversarial_example` searches.

    ``highs.time_limit`` is the budget of the whole attack (gradient attack, bounds, branch
    and bound and MIPs), shared by the targets.
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
    device: str = "cpu"  #: where the gradient attack's and branch and bound's torch work runs
    bab: bool = True  #: decide mode: branch and bound beside the MIPs (False: the MIPs alone)
    progress: ProgressHook | None = None  #: sees each target's state as the search goes


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
    logits = network.forward(point)
    prediction = int(np.argmax(logits))
    targets = [target] if target is not None else target_order(logits, label)
    if prediction != label:
        witness = check_witness(network, region, point, prediction, label) if region.contains(point) else None
        elapsed = time.perf_counter() - start
        return AttackResult(
            "misclassified", label, prediction, logits, mode, region, witness, (), None, 0.0, elapsed
        )
    method = options.bounds.method if isinstance(options.bounds, NeuronBounds) else options.bounds
    pgd = options.pgd
    engine = EngineOptions(
        mode=mode,
        bounds=options.bounds,
        bounds_options=options.bounds_options,
        formulation=options.formulation,
        highs=options.highs,
        falsify=None
        if pgd is False
        else pgd
        if isinstance(pgd, FalsifyOptions)
        else FalsifyOptions(seed=options.highs.random_seed),
        rule_out=method != "ia",  # bare interval bounds: the plain baseline, every target a MIP
        bab=options.bab,
        robust_tolerance=options.robust_tolerance,
        device=options.device,
        progress=options.progress,
    )
    starts = [point, *(region.project(p) for p in start_points)]
    spec = attack_spec(region, network.n_outputs, label, targets)
    (decision,) = decide(network, [spec], options.highs.time_limit, engine, starts=starts)
    falsified = decision.falsified
    by_falsifier = (  # decide mode, settled before any MIP: no per-target records
        mode == "decide"
        and decision.witness is not None
        and decision.outcomes[decision.witness].stage == "falsify"
    )
    outcomes = () if by_falsifier else _target_outcomes(network, label, targets, decision)
    encoding = None
    if decision.model is not None:
        encoding = decision.model.stats
    elif decision.bounds is not None and not by_falsifier:  # what the MIP would have been
        encoding = encode(network, region, decision.bounds, formulation=options.formulation).stats
    witness = best_witness(outcomes)
    if by_falsifier:
        found = decision.outcomes[decision.witness]
        witness = check_witness(network, region, found.point, targets[decision.witness], label)
    return AttackResult(
        status="adversarial" if by_falsifier else overall_status(outcomes, len(targets)),
        label=label,
        clean_prediction=prediction,
        clean_logits=logits,
        mode=mode,
        region=region,
        witness=witness,
        targets=outcomes,
        encoding=encoding,
        bounds_seconds=decision.bounds_seconds,
        total_seconds=time.perf_counter() - start,
        pgd_seconds=0.0 if falsified is None else falsified.seconds,
        pgd_margin=None if falsified is None else float(np.max(falsified.slacks)),
        interrupted=decision.interrupted,
    )


#: An engine status as an attack status.
_ATTACK_STATUS: dict[str, AttackStatus] = {
    "sat": "adversarial",
    "unsat": "robust",
    "timeout": "timeout",
    "unknown": "unknown",
}
#: What settled a target without a MIP, as its solve record says.
_NOT_SOLVED = {"bounds": "linear relaxation bound", "bab": "branch and bound", "falsify": "gradient attack"}


def _target_outcomes(
    network: Network, label: int, targets: list[int], decision: Decision
) -> tuple[TargetOutcome, ...]:
    """The targets the engine reached, in order: settled ones, and those whose MIP ran."""
    region = decision.spec.region
    outcomes = []
    for target, outcome in zip(targets, decision.outcomes, strict=True):
        if not _reached(outcome):
            continue
        solve = outcome.solve or not_solved(_NOT_SOLVED.get(outcome.stage, outcome.stage), outcome.bound)
        witness = (
            None if outcome.point is None else check_witness(network, region, outcome.point, target, label)
        )
        outcomes.append(
            TargetOutcome(target, _ATTACK_STATUS[outcome.status], solve, witness, outcome.tolerance)
        )
    return tuple(outcomes)


def _reached(outcome: Outcome) -> bool:
    """Whether the engine settled the target or ran its MIP (not only out of time before it)."""
    return outcome.solve is not None or outcome.status in ("sat", "unsat")
