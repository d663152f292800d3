"""The targets of an attack: their order, and one margin MIP per target with its verdict.

Untargeted attacks try the classes in order of the clean logits, runner-up first, as in
MIPVerify (Tjeng et al., "Evaluating Robustness of Neural Networks with Mixed Integer
Programming", ICLR 2019). A target's MIP maximises ``ẑ_t − ẑ_y``; in decide mode it stops
at the first incumbent with margin > 0 or once the dual bound proves margin ≤ −τ (the
decision version of Cacciola et al. 2023). "robust" needs that proof with ``τ`` at least
what HiGHS's feasibility tolerances can move the margin; "adversarial" needs a forward
pass (:func:`~prunemip.engine.results.check_witness`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from prunemip.encoders.mip_model import MipModel
from prunemip.engine.results import AttackStatus, Mode, TargetOutcome, Witness, check_witness
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve
from prunemip.solvers.result import SolveResult, SolveStatus

#: A "robust" verdict needs HiGHS to prove the margin ≤ −τ with τ at least this, and at
#: least what HiGHS's feasibility tolerances can move the margin on this network
#: (``MipModel.tolerance_effect``): a smaller proven margin is not a proof.
ROBUST_TOLERANCE = 1e-6


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
class AttackContext:
    """What every target of one attack shares: the question and the clock."""

    network: Network
    region: InputRegion
    label: int
    mode: Mode
    deadline: float  #: ``time.perf_counter()`` at which the attack's budget ends
    tolerance: float  #: the least proof margin τ, before HiGHS's tolerances are counted

    def witness(self, x: np.ndarray, target: int) -> Witness:
        """:func:`~prunemip.engine.results.check_witness` of ``x`` for ``target``.

        Args:
            x: a candidate point.
            target: the class whose margin is measured.

        Returns:
            The witness.
        """
        return check_witness(self.network, self.region, x, target, self.label)

    def remaining(self) -> float:
        """Seconds left until :attr:`deadline`."""
        return self.deadline - time.perf_counter()


def outcome_status(result: SolveResult, witness: Witness | None, tolerance: float) -> AttackStatus:
    """The verdict of one target's solve.

    Args:
        result: HiGHS's result.
        witness: the forward-pass check of its solution, if any.
        tolerance: the proof margin τ.

    Returns:
        "adversarial" for an adversarial witness; "robust" for a final dual bound ≤ −τ;
        "timeout" when a limit stopped HiGHS; else "unknown".
    """
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
class TargetMip:
    """One target's margin MIP, solved under given HiGHS options, every verdict re-checked."""

    objective_model: MipModel  #: the encoded network with objective ``y_target − y_label``
    start: np.ndarray  #: the best of the given start points, as a full MIP solution
    context: AttackContext
    target: int

    @classmethod
    def of(
        cls, model: MipModel, context: AttackContext, target: int, starts: Sequence[np.ndarray]
    ) -> TargetMip:
        """The margin MIP of ``target``, started from the best of ``starts``.

        Args:
            model: the encoded network (any objective).
            context: the attack's shared data.
            target: the target class.
            starts: input points to start from (at least one).

        Returns:
            The target's MIP.
        """
        objective_model = model.with_margin_objective(target, context.label)
        start = max(
            (objective_model.solution_from_input(point) for point in starts),
            key=objective_model.evaluate_objective,
        )
        return cls(objective_model, start, context, target)

    def solve(self, options: HighsOptions, start: np.ndarray | None = None) -> TargetOutcome:
        """Solve from ``start`` (default: :attr:`start`) until the context's deadline.

        "robust" needs a final dual bound ≤ −τ, τ = max(the context's tolerance, what
        ``options``'s feasibility tolerances can move the margin); "adversarial" needs a
        forward pass.

        Args:
            options: HiGHS settings (their time limit is replaced by the time left).
            start: a full MIP solution to start from.

        Returns:
            The target's outcome.
        """
        # HiGHS's mip_feasibility_tolerance bounds row, bound and integrality violations alike.
        feasibility = options.feasibility_tolerance
        tolerance = max(
            self.context.tolerance, self.objective_model.tolerance_effect(feasibility, feasibility)
        )
        decide = self.context.mode == "decide"
        rule = DecisionRule(target=0.0, proof=-tolerance) if decide else None
        start = self.start if start is None else start
        result = solve(self.objective_model, self._budget(options), start=start, decide=rule)
        witness = self._witness(result)
        positive_but_unverified = (
            decide
            and result.objective is not None
            and result.objective > 0.0
            and witness is not None
            and not witness.is_adversarial
            and self.context.remaining() > 0
        )
        if positive_but_unverified:
            # The solver's margin is positive only within its tolerances: settle it by optimising.
            again = solve(self.objective_model, self._budget(options), start=result.solution)
            result = _combined(result, again)
            witness = self._witness(again) or witness
        status = outcome_status(result, witness, tolerance)
        return TargetOutcome(self.target, status, result, witness, tolerance)

    def solve_again(self, options: HighsOptions, earlier: TargetOutcome) -> TargetOutcome:
        """Solve under ``options`` (tighter tolerances) from ``earlier``'s witness.

        The witness is recomputed exactly by a forward pass so that the tighter tolerances
        accept it.

        Args:
            options: the tighter HiGHS settings.
            earlier: this target's first outcome.

        Returns:
            The new outcome, with the effort of both solves and the better of the two witnesses.
        """
        point = earlier.witness
        start = None if point is None else self.objective_model.solution_from_input(point.x)
        again = self.solve(options, start)
        witnesses = [w for w in (again.witness, earlier.witness) if w is not None]
        best = max(witnesses, key=lambda w: (w.is_adversarial, w.margin)) if witnesses else None
        return replace(again, solve=_combined(earlier.solve, again.solve), witness=best)

    def _budget(self, options: HighsOptions) -> HighsOptions:
        return replace(options, time_limit=max(self.context.remaining(), 1e-3))

    def _witness(self, result: SolveResult) -> Witness | None:
        if result.solution is None:
            return None
        return self.context.witness(self.objective_model.inputs_from_solution(result.solution), self.target)


def settle_unknown(
    outcomes: list[TargetOutcome], mips: dict[int, TargetMip], options: HighsOptions, context: AttackContext
) -> list[TargetOutcome]:
    """Re-solve each "unknown" target under :meth:`HighsOptions.tightened` while time remains.

    In decide mode it stops once one turns out adversarial. Only the tighter solve's proof
    counts: its τ comes from its own tolerances.

    Args:
        outcomes: the targets' first outcomes, in order.
        mips: the MIP of every target solved.
        options: the HiGHS settings of the first solves.
        context: the attack's shared data.

    Returns:
        The outcomes, the unknown ones replaced by their second solve's.
    """
    decide = context.mode == "decide"
    tighter = options.tightened()
    if tighter is None or (decide and any(o.status == "adversarial" for o in outcomes)):
        return outcomes
    settled = list(outcomes)
    for index, outcome in enumerate(outcomes):
        if outcome.status != "unknown" or context.remaining() <= 0:
            continue
        settled[index] = mips[outcome.target].solve_again(tighter, outcome)
        if decide and settled[index].status == "adversarial":
            break
    return settled


def proven_by_bounds(target: int, bound: float, tolerance: float) -> TargetOutcome:
    """A target whose margin the linear relaxation bounds by ``bound ≤ −τ``: robust, no MIP solved.

    Args:
        target: the target class.
        bound: the rigorous upper bound of its margin.
        tolerance: the proof margin τ.

    Returns:
        The outcome, with a solve record of no effort.
    """
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
