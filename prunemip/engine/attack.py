"""Adversarial examples by MIP: maximise the logit margin ``ẑ_t − ẑ_y`` over an input region.

Targeted: one target class ``t``. Untargeted: targets in order of the clean logits
(runner-up first), as in MIPVerify (Tjeng et al., ICLR 2019). Modes:

* ``decide``: stop at the first incumbent with margin > 0 or once the dual bound proves
  margin ≤ 0 (Cacciola et al. 2023's decision version); untargeted stops at the first
  target that yields an adversarial example.
* ``optimize``: the best margin, proven optimal, over every target.

Every witness is pulled exactly into the region and re-checked by a float64 forward pass
of the same network; the reported margin is the forward pass's, not the solver's.

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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from prunemip.encoders.bigm import DEFAULT_FORMULATION, encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.linear import output_upper_bounds
from prunemip.encoders.mip_model import EncodingStats, MipModel
from prunemip.engine.falsify import PgdOptions, PgdResult, pgd_attack
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import ObbtOptions, compute_bounds, continue_bounds
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve
from prunemip.solvers.methods import BOUNDS_METHODS, DEFAULT_BOUNDS
from prunemip.solvers.result import SolveResult, SolveStatus

#: A "robust" verdict needs HiGHS to prove the margin ≤ −τ with τ at least this, and at
#: least what HiGHS's feasibility tolerances can move the margin on this network
#: (``MipModel.tolerance_effect``): a smaller proven margin is not a proof.
ROBUST_TOLERANCE = 1e-6

#: HiGHS settings of a decide-mode MIP once the gradient attack has searched the region for an
#: adversarial input: no RINS or RENS sub-MIPs. They look for better incumbents; a MIP that
#: only has to prove a margin ≤ −τ spent most of its time in them (Fashion-MNIST 2x100 sparse,
#: L∞ 0.02, image 6: 5.2 of 6.5 s). Without a gradient attack they find the adversarial inputs,
#: so HiGHS keeps them. ``options.extra`` overrides these.
SEARCHED_REGION_HIGHS: dict[str, Any] = {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False}

Mode = Literal["decide", "optimize"]
MODES: tuple[str, ...] = ("decide", "optimize")
#: Status of an attack or of one target: what is known about margins > 0 in the region.
AttackStatus = Literal["adversarial", "robust", "timeout", "misclassified", "unknown"]


@dataclass(frozen=True)
class Witness:
    """A point of the region, re-checked by a forward pass."""

    x: np.ndarray = field(repr=False)
    target: int
    margin: float  #: forward-pass logit margin ẑ_target − ẑ_label
    predicted: int
    distance: dict[str, float]
    in_region: bool

    @property
    def is_adversarial(self) -> bool:
        return self.in_region and self.margin > 0.0


@dataclass(frozen=True)
class TargetOutcome:
    """What the MIP of one target class established."""

    target: int
    status: AttackStatus
    solve: SolveResult
    witness: Witness | None
    proof_tolerance: float  #: "robust" needed a dual bound ≤ −proof_tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "status": self.status,
            "mip_margin": self.solve.objective,
            "dual_bound": self.solve.dual_bound,
            "verified_margin": None if self.witness is None else self.witness.margin,
            "proof_tolerance": self.proof_tolerance,
            "solve": self.solve.to_dict(),
        }


@dataclass(frozen=True)
class AttackResult:
    """Outcome of an adversarial search on one input."""

    status: AttackStatus
    label: int
    clean_prediction: int
    clean_logits: np.ndarray = field(repr=False)
    mode: str
    region: InputRegion = field(repr=False)
    witness: Witness | None
    targets: tuple[TargetOutcome, ...]
    encoding: EncodingStats | None
    bounds_seconds: float
    total_seconds: float
    pgd_seconds: float = 0.0  #: the gradient attack's time (0 when it did not run)
    pgd_margin: float | None = None  #: its best forward-pass margin

    @property
    def found(self) -> bool:
        """Whether a verified adversarial example (or a misclassified input) was found."""
        return self.witness is not None and self.witness.is_adversarial

    @property
    def best_margin(self) -> float | None:
        return None if self.witness is None else self.witness.margin

    @property
    def solve_seconds(self) -> float:
        return sum(outcome.solve.solve_seconds for outcome in self.targets)

    @property
    def nodes(self) -> int:
        return sum(outcome.solve.nodes for outcome in self.targets)

    def to_dict(self) -> dict[str, Any]:
        witness = self.witness
        return {
            "status": self.status,
            "label": self.label,
            "clean_prediction": self.clean_prediction,
            "mode": self.mode,
            "region": {"norm": self.region.norm, "radius": self.region.radius},
            "found": self.found,
            "target": None if witness is None else witness.target,
            "margin": None if witness is None else witness.margin,
            "adversarial_prediction": None if witness is None else witness.predicted,
            "distance": None if witness is None else witness.distance,
            "check_passed": None if witness is None else witness.is_adversarial,
            "x_adv": None if witness is None else [float(v) for v in witness.x],
            "targets": [outcome.to_dict() for outcome in self.targets],
            "encoding": None if self.encoding is None else self.encoding.to_dict(),
            "bounds_seconds": self.bounds_seconds,
            "pgd_seconds": self.pgd_seconds,
            "pgd_margin": self.pgd_margin,
            "solve_seconds": self.solve_seconds,
            "nodes": self.nodes,
            "total_seconds": self.total_seconds,
        }


def check_witness(network: Network, region: InputRegion, x: np.ndarray, target: int, label: int) -> Witness:
    """Project ``x`` exactly into the region and re-evaluate the margin in float64."""
    point = region.project(x)
    logits = network.forward(point)
    return Witness(
        x=point,
        target=target,
        margin=float(logits[target] - logits[label]),
        predicted=int(np.argmax(logits)),
        distance=region.distance(point),
        in_region=region.contains(point),
    )


def target_order(logits: np.ndarray, label: int) -> list[int]:
    """Every class but ``label``, most likely first (ties by class index)."""
    order = np.lexsort((np.arange(logits.size), -logits))
    return [int(c) for c in order if c != label]


def _outcome_status(result: SolveResult, witness: Witness | None, tolerance: float) -> AttackStatus:
    if witness is not None and witness.is_adversarial:
        return "adversarial"
    # Robust needs a final dual bound ≤ −tolerance: an incumbent ≤ 0 within HiGHS's gap
    # (mip_abs_gap) or feasibility tolerances can hide a positive optimum.
    if (
        result.status in (SolveStatus.DECIDED_AT_MOST, SolveStatus.OPTIMAL)
        and result.dual_bound is not None
        and result.dual_bound <= -tolerance
    ):
        return "robust"
    if result.status in (SolveStatus.TIME_LIMIT, SolveStatus.INTERRUPTED, SolveStatus.LIMIT):
        return "timeout"
    return "unknown"


def _combined(first: SolveResult, second: SolveResult) -> SolveResult:
    """``second``'s answer with the effort of both solves."""
    return replace(
        second,
        nodes=first.nodes + second.nodes,
        lp_iterations=first.lp_iterations + second.lp_iterations,
        load_seconds=first.load_seconds + second.load_seconds,
        solve_seconds=first.solve_seconds + second.solve_seconds,
    )


@dataclass(frozen=True)
class _TargetMip:
    """One target's margin MIP, solved under given HiGHS options, every verdict re-checked."""

    objective_model: MipModel  #: the encoded network with objective ``y_target − y_label``
    start: np.ndarray  #: the best of the given start points, as a full MIP solution
    network: Network
    region: InputRegion
    label: int
    target: int
    mode: Mode
    deadline: float
    tolerance: float  #: the least proof margin τ, before HiGHS's tolerances are counted

    @classmethod
    def of(
        cls,
        model: MipModel,
        network: Network,
        region: InputRegion,
        label: int,
        target: int,
        mode: Mode,
        deadline: float,
        starts: list[np.ndarray],
        tolerance: float,
    ) -> _TargetMip:
        objective_model = model.with_margin_objective(target, label)
        start = max(
            (objective_model.solution_from_input(point) for point in starts),
            key=objective_model.evaluate_objective,
        )
        return cls(objective_model, start, network, region, label, target, mode, deadline, tolerance)

    def solve(self, options: HighsOptions, start: np.ndarray | None = None) -> TargetOutcome:
        """Solve from ``start`` (default: :attr:`start`) until :attr:`deadline`.

        "robust" needs a final dual bound ≤ −τ, τ = max(:attr:`tolerance`, what ``options``'s
        feasibility tolerances can move the margin); "adversarial" needs a forward pass."""
        # HiGHS's mip_feasibility_tolerance bounds row, bound and integrality violations alike.
        feasibility = options.feasibility_tolerance
        tolerance = max(self.tolerance, self.objective_model.tolerance_effect(feasibility, feasibility))
        rule = DecisionRule(target=0.0, proof=-tolerance) if self.mode == "decide" else None
        start = self.start if start is None else start
        result = solve(self.objective_model, self._budget(options), start=start, decide=rule)
        witness = self._witness(result)
        positive_but_unverified = (
            self.mode == "decide"
            and result.objective is not None
            and result.objective > 0.0
            and witness is not None
            and not witness.is_adversarial
            and self.deadline > time.perf_counter()
        )
        if positive_but_unverified:
            # The solver's margin is positive only within its tolerances: settle it by optimising.
            again = solve(self.objective_model, self._budget(options), start=result.solution)
            result = _combined(result, again)
            witness = self._witness(again) or witness
        status = _outcome_status(result, witness, tolerance)
        return TargetOutcome(self.target, status, result, witness, tolerance)

    def solve_again(self, options: HighsOptions, earlier: TargetOutcome) -> TargetOutcome:
        """Solve under ``options`` (tighter tolerances) from ``earlier``'s witness, recomputed
        exactly by a forward pass so that the tighter tolerances accept it; the result carries
        the effort of both solves and the better of the two witnesses."""
        point = earlier.witness
        start = None if point is None else self.objective_model.solution_from_input(point.x)
        again = self.solve(options, start)
        witnesses = [w for w in (again.witness, earlier.witness) if w is not None]
        best = max(witnesses, key=lambda w: (w.is_adversarial, w.margin)) if witnesses else None
        return replace(again, solve=_combined(earlier.solve, again.solve), witness=best)

    def _budget(self, options: HighsOptions) -> HighsOptions:
        return replace(options, time_limit=max(self.deadline - time.perf_counter(), 1e-3))

    def _witness(self, result: SolveResult) -> Witness | None:
        if result.solution is None:
            return None
        x = self.objective_model.inputs_from_solution(result.solution)
        return check_witness(self.network, self.region, x, self.target, self.label)


def find_adversarial_example(
    network: Network,
    x0: np.ndarray,
    label: int,
    region: InputRegion | None = None,
    *,
    norm: str = "linf",
    radius: float | None = None,
    target: int | None = None,
    mode: Mode = "decide",
    bounds: NeuronBounds | str | None = None,
    formulation: str = DEFAULT_FORMULATION,
    options: HighsOptions | None = None,
    start_points: list[np.ndarray] | None = None,
    robust_tolerance: float = ROBUST_TOLERANCE,
    pgd: PgdOptions | bool | None = True,
    bounds_options: ObbtOptions | None = None,
) -> AttackResult:
    """Search the region around ``x0`` for an input classified other than ``label``.

    Give either ``region`` or ``norm`` and ``radius`` (the ball is intersected with the
    network's input range). ``target=None`` is untargeted. ``options.time_limit`` is the
    budget of the whole attack (gradient attack, bounds and MIPs), shared by the targets
    in turn. ``bounds`` is precomputed :class:`NeuronBounds` or a method name
    (``ia``, ``linear``, ``lp``, ``mip``; default ``auto``, see
    :func:`~prunemip.solvers.bounds.compute_bounds`), ``bounds_options`` its LP/MIP limits.
    ``pgd`` configures the gradient attack (``False`` skips it). ``start_points`` seed
    the MIP; ``x0`` and the gradient attack's points always do. "robust" means every
    margin was proven ≤ −τ — by HiGHS, with τ the larger of ``robust_tolerance`` and the
    margin's sensitivity to HiGHS's tolerances, or in decide mode by the rigorous linear
    relaxation bound; a best margin within τ of 0 is "unknown". Decide-mode MIPs after the
    gradient attack run with :data:`SEARCHED_REGION_HIGHS` under ``options.extra``.
    """
    start = time.perf_counter()
    if mode not in MODES:
        raise PrunemipError(f"unknown mode {mode!r}; choose one of {MODES}")
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
    options = options or HighsOptions()

    logits = network.forward(point)
    prediction = int(np.argmax(logits))
    targets = [target] if target is not None else target_order(logits, label)
    if prediction != label:
        witness = check_witness(network, region, point, prediction, label) if region.contains(point) else None
        return AttackResult(
            "misclassified",
            label,
            prediction,
            logits,
            mode,
            region,
            witness,
            (),
            None,
            0.0,
            time.perf_counter() - start,
        )

    deadline = start + options.time_limit
    starts = [point, *(region.project(p) for p in start_points or [])]
    # 1. Cheap bounds (up to the linear relaxation). In decide mode, a target whose margin
    #    they bound by ≤ −τ needs neither the gradient attack nor a MIP (not with bare
    #    interval bounds: the plain baseline).
    method = bounds.method if isinstance(bounds, NeuronBounds) else bounds or DEFAULT_BOUNDS
    if method not in (*BOUNDS_METHODS, DEFAULT_BOUNDS):
        raise PrunemipError(f"unknown bounds method {method!r}; choose one of {BOUNDS_METHODS} or 'auto'")
    shortcut = mode == "decide" and method != "ia"
    if not isinstance(bounds, NeuronBounds):
        bounds = compute_bounds(network, region, "ia" if method == "ia" else "linear")
    proven = _linear_margin_bounds(network, region, bounds, label, targets) if shortcut else {}
    open_targets = [t for t in targets if proven.get(t, 0.0) > -robust_tolerance]
    # 2. The gradient attack on the targets still open; in decide mode an adversarial point ends it.
    quick = _gradient_attack(network, region, label, open_targets, pgd, options, deadline)
    pgd_seconds = 0.0 if quick is None else quick.seconds
    pgd_margin = None if quick is None or not quick.margins else quick.best_margin
    if quick is not None:
        by_margin = sorted(quick.margins, key=quick.margins.__getitem__, reverse=True)
        starts += [quick.points[t] for t in by_margin]
        if mode == "decide" and by_margin:
            witness = check_witness(network, region, quick.points[by_margin[0]], by_margin[0], label)
            if witness.is_adversarial:
                return AttackResult(
                    "adversarial", label, prediction, logits, mode, region, witness, (), None,
                    bounds.seconds, time.perf_counter() - start, pgd_seconds, pgd_margin,
                )  # fmt: skip
    # 3. Tighter bounds, only while a target is still open, so before any MIP: "alpha", "lp" and
    #    "mip" always; "auto" when the LP stage pays (bounds.lp_pays). No MIP is ever restarted.
    if open_targets and method not in ("ia", "linear") and bounds.method == "linear":
        bounds = continue_bounds(
            network, region, bounds, method, options=bounds_options,
            time_limit=max(deadline - time.perf_counter(), 0.0), points=starts,
        )  # fmt: skip
        proven = _linear_margin_bounds(network, region, bounds, label, targets) if shortcut else {}
    model = encode(network, region, bounds, formulation=formulation)
    if mode == "decide" and quick is not None:
        options = replace(options, extra={**SEARCHED_REGION_HIGHS, **options.extra})
    outcomes: list[TargetOutcome] = []
    mips: dict[int, _TargetMip] = {}
    for candidate in targets:
        if candidate in proven and proven[candidate] <= -robust_tolerance:
            outcomes.append(_proven_by_bounds(candidate, proven[candidate], robust_tolerance))
            continue
        if deadline <= time.perf_counter():
            break
        mips[candidate] = _TargetMip.of(
            model, network, region, label, candidate, mode, deadline, starts, robust_tolerance
        )
        outcomes.append(mips[candidate].solve(options))
        if mode == "decide" and outcomes[-1].status == "adversarial":
            break
    # 5. Targets HiGHS left "unknown" (finished within what its tolerances can move the margin)
    #    are solved again with tighter tolerances, once every target has had its first solve.
    outcomes = _settle_unknown(outcomes, mips, options, mode, deadline)
    return AttackResult(
        status=_overall_status(outcomes, len(targets)),
        label=label,
        clean_prediction=prediction,
        clean_logits=logits,
        mode=mode,
        region=region,
        witness=_best_witness(outcomes),
        targets=tuple(outcomes),
        encoding=model.stats,
        bounds_seconds=bounds.seconds,
        total_seconds=time.perf_counter() - start,
        pgd_seconds=pgd_seconds,
        pgd_margin=pgd_margin,
    )


def _settle_unknown(
    outcomes: list[TargetOutcome],
    mips: dict[int, _TargetMip],
    options: HighsOptions,
    mode: Mode,
    deadline: float,
) -> list[TargetOutcome]:
    """Re-solve each "unknown" target under :meth:`HighsOptions.tightened` while time remains,
    until (decide mode) one turns out adversarial. Only the tighter solve's proof counts: its τ
    comes from its own tolerances."""
    tighter = options.tightened()
    if tighter is None or (mode == "decide" and any(o.status == "adversarial" for o in outcomes)):
        return outcomes
    settled = list(outcomes)
    for index, outcome in enumerate(outcomes):
        if outcome.status != "unknown" or deadline <= time.perf_counter():
            continue
        settled[index] = mips[outcome.target].solve_again(tighter, outcome)
        if mode == "decide" and settled[index].status == "adversarial":
            break
    return settled


def _gradient_attack(
    network: Network,
    region: InputRegion,
    label: int,
    targets: list[int],
    pgd: PgdOptions | bool | None,
    options: HighsOptions,
    deadline: float,
) -> PgdResult | None:
    if pgd is False or not targets or not np.any(region.upper > region.lower):
        return None
    settings = pgd if isinstance(pgd, PgdOptions) else PgdOptions(seed=options.random_seed)
    return pgd_attack(network, region, label, targets, settings, deadline=deadline)


def _linear_margin_bounds(
    network: Network, region: InputRegion, bounds: NeuronBounds, label: int, targets: list[int]
) -> dict[int, float]:
    """Rigorous upper bounds of ``ẑ_t − ẑ_y`` per target by the linear relaxation of ``bounds``."""
    if not targets:
        return {}
    coefficients = np.zeros((len(targets), network.n_outputs))
    coefficients[np.arange(len(targets)), targets] = 1.0
    coefficients[:, label] -= 1.0
    upper = output_upper_bounds(network, region, bounds, coefficients)
    if upper is None:
        return {}
    return {t: float(u) for t, u in zip(targets, upper, strict=True) if np.isfinite(u)}


def _proven_by_bounds(target: int, bound: float, tolerance: float) -> TargetOutcome:
    """A target whose margin the linear relaxation bounds by ≤ −τ: robust, no MIP solved."""
    result = SolveResult(
        status=SolveStatus.DECIDED_AT_MOST,
        highs_status="not solved: linear relaxation bound",
        objective=None,
        dual_bound=bound,
        gap=None,
        nodes=0,
        lp_iterations=0,
        load_seconds=0.0,
        presolve_seconds=None,
        solve_seconds=0.0,
        solution=None,
    )
    return TargetOutcome(target, "robust", result, None, tolerance)


def _best_witness(outcomes: list[TargetOutcome]) -> Witness | None:
    witnesses = [o.witness for o in outcomes if o.witness is not None and o.witness.in_region]
    return max(witnesses, key=lambda w: w.margin, default=None)


def _overall_status(outcomes: list[TargetOutcome], n_targets: int) -> AttackStatus:
    statuses = [o.status for o in outcomes]
    if "adversarial" in statuses:
        return "adversarial"
    if len(outcomes) == n_targets and all(s == "robust" for s in statuses):
        return "robust"
    if "unknown" in statuses and "timeout" not in statuses and len(outcomes) == n_targets:
        return "unknown"
    return "timeout"
