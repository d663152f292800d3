"""Solve a ``MipModel`` with HiGHS (highspy): options, starting point, early stop, results.

Decide mode answers only a sign question and stops as soon as it is known (the HiGHS
counterpart of Gurobi's ``BestObjStop`` / ``BestBdStop`` used by Cacciola et al. 2023):
for a maximisation, at the first incumbent with objective ``> above``, or once the dual
bound proves the optimum ``≤ at_most`` (``at_most ≤ above``; a gap between them leaves
room for the solver's tolerances). Both checks run in HiGHS's MIP interrupt and
improving-solution callbacks, and the final status is re-checked against the final
incumbent and dual bound, so a result never claims more than they show.

Decide mode also hands ``at_most`` to HiGHS as an objective cutoff (its ``objective_bound``
option): HiGHS then prunes every node whose LP bound cannot beat it, as if an incumbent of
that value were known, instead of branching on until the global bound clears it. A MIP that
is "infeasible" under the cutoff has proved that nothing beats ``at_most``; every dual bound
read under a cutoff is capped at it, so no result claims more than the cutoff proves. How
HiGHS reads the option (its sign for a maximisation, the objective offset) is found once per
process on two-variable probes; if they disagree with every reading, no cutoff is set. An
``objective_bound`` in ``HighsOptions.extra`` is the caller's and replaces the cutoff
(``objective_bound=inf`` turns it off).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from prunemip import interrupts
from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError
from prunemip.solvers.result import SolveResult, SolveStatus

#: How often ``solve``'s ``on_progress`` hears from a running MIP search, in seconds.
PROGRESS_SECONDS = 0.25

_MODEL_STATUS = {
    highspy.HighsModelStatus.kOptimal: SolveStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: SolveStatus.UNBOUNDED,
    highspy.HighsModelStatus.kTimeLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kSolutionLimit: SolveStatus.LIMIT,
    highspy.HighsModelStatus.kIterationLimit: SolveStatus.LIMIT,
    highspy.HighsModelStatus.kInterrupt: SolveStatus.INTERRUPTED,
}


#: HiGHS's defaults for the tolerances prunemip reads or tightens.
HIGHS_DEFAULT_TOLERANCES = {
    "mip_feasibility_tolerance": 1e-6,
    "primal_feasibility_tolerance": 1e-7,
    "dual_feasibility_tolerance": 1e-7,
}
#: How much a re-solve tightens HiGHS's feasibility tolerances, and how far it may go.
TIGHTENING = 1e-3
TOLERANCE_FLOOR = 1e-9


@dataclass(frozen=True)
class HighsOptions:
    """The HiGHS settings prunemip exposes; ``extra`` passes any other HiGHS option by name."""

    time_limit: float = 600.0
    threads: int | None = None
    random_seed: int = 0
    mip_rel_gap: float = 1e-4
    presolve: bool = True
    log: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def tolerance(self, name: str) -> float:
        """The HiGHS tolerance ``name`` these options set (HiGHS's default otherwise).

        Args:
            name: a key of :data:`HIGHS_DEFAULT_TOLERANCES`.

        Returns:
            The tolerance.
        """
        return float(self.extra.get(name, HIGHS_DEFAULT_TOLERANCES[name]))

    @property
    def feasibility_tolerance(self) -> float:
        """The largest row, bound and integrality violation HiGHS accepts in a MIP solution."""
        names = ("mip_feasibility_tolerance", "primal_feasibility_tolerance")
        return max(self.tolerance(name) for name in names)

    def tightened(self) -> HighsOptions | None:
        """These options with HiGHS's MIP, primal and dual feasibility tolerances
        ``TIGHTENING``× smaller, not below ``TOLERANCE_FLOOR`` (HiGHS accepts down to 1e-10);
        None when the feasibility tolerance is at the floor already."""
        feasibility = max(self.feasibility_tolerance * TIGHTENING, TOLERANCE_FLOOR)
        if feasibility >= self.feasibility_tolerance:
            return None
        dual = self.tolerance("dual_feasibility_tolerance")
        tolerances = {
            "mip_feasibility_tolerance": feasibility,
            "primal_feasibility_tolerance": feasibility,
            "dual_feasibility_tolerance": min(dual, max(dual * TIGHTENING, TOLERANCE_FLOOR)),
        }
        return replace(self, extra={**self.extra, **tolerances})

    def apply(self, highs: highspy.Highs) -> None:
        """Set these options on ``highs``.

        Args:
            highs: the HiGHS instance.

        Raises:
            PrunemipError: for a non-positive time limit or an option HiGHS rejects.
        """
        if self.time_limit <= 0:
            raise PrunemipError(f"the time limit must be positive, got {self.time_limit}")
        settings: dict[str, Any] = {
            "time_limit": float(self.time_limit),
            "random_seed": int(self.random_seed),
            "mip_rel_gap": float(self.mip_rel_gap),
            "presolve": "on" if self.presolve else "off",
            "output_flag": True,  # the log callback times presolve; console output is separate
            "log_to_console": bool(self.log),
        }
        if self.threads is not None:
            settings["threads"] = int(self.threads)
        settings.update(self.extra)
        for name, value in settings.items():
            if highs.setOptionValue(name, value) != highspy.HighsStatus.kOk:
                raise PrunemipError(f"HiGHS rejected option {name}={value!r}")


def to_highs(model: MipModel, highs: highspy.Highs | None = None) -> highspy.Highs:
    """Pass ``model`` to a ``highspy.Highs`` instance in one call.

    Args:
        model: the MIP (or LP, without integral columns).
        highs: the instance to load it into (its options are kept); None makes a new one.

    Returns:
        The instance, holding ``model``.

    Raises:
        PrunemipError: if HiGHS refuses the model.
    """
    highs = highs or highspy.Highs()
    lp = _highs_lp(
        model.matrix,
        model.objective,
        model.objective_offset,
        (model.col_lower, model.col_upper),
        (model.row_lower, model.row_upper),
        model.integrality,
        model.maximize,
    )
    if highs.passModel(lp) == highspy.HighsStatus.kError:
        raise PrunemipError("HiGHS refused the model (passModel returned an error)")
    return highs


def _highs_lp(
    matrix: sp.csc_matrix,
    cost: np.ndarray,
    offset: float,
    col_bounds: tuple[np.ndarray, np.ndarray],
    row_bounds: tuple[np.ndarray, np.ndarray],
    integrality: np.ndarray,
    maximize: bool,
) -> highspy.HighsLp:
    """``opt cost·x + offset`` s.t. ``row_lower ≤ matrix·x ≤ row_upper``, ``col_lower ≤ x ≤
    col_upper``, integral where ``integrality`` says, as one ``HighsLp``."""
    lp = highspy.HighsLp()
    lp.num_row_, lp.num_col_ = matrix.shape
    lp.col_cost_ = cost
    lp.offset_ = offset
    lp.col_lower_, lp.col_upper_ = col_bounds
    lp.row_lower_, lp.row_upper_ = row_bounds
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if integral else highspy.HighsVarType.kContinuous
        for integral in integrality
    ]
    lp.sense_ = highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
    return lp


@dataclass(frozen=True)
class DecisionRule:
    """When decide mode may stop, in the objective's own units.

    Maximisation: once an incumbent is ``> target``, or the dual bound is ``≤ proof``.
    Minimisation: once an incumbent is ``< target``, or the dual bound is ``≥ proof``.
    ``proof`` defaults to ``target``; a gap between them (``proof < target`` when
    maximising) keeps a proof clear of the solver's tolerances.
    """

    target: float = 0.0
    proof: float | None = None

    @property
    def proof_level(self) -> float:
        return self.target if self.proof is None else self.proof

    def check_sense(self, maximize: bool) -> None:
        """Check that the proof level lies on the right side of the target for the sense.

        Args:
            maximize: the objective's sense.

        Raises:
            ValueError: when the proof level lies beyond the target (above it when maximising).
        """
        gap = self.target - self.proof_level
        if (gap < 0) if maximize else (gap > 0):
            side = "above" if maximize else "below"
            raise ValueError(f"the proof level {self.proof_level} lies {side} the target {self.target}")

    def beaten(self, value: float, maximize: bool) -> bool:
        """Whether an incumbent of objective ``value`` beats the target.

        Args:
            value: the incumbent's objective.
            maximize: the objective's sense.

        Returns:
            ``value > target`` when maximising, ``value < target`` when minimising.
        """
        return value > self.target if maximize else value < self.target

    def settled(self, dual_bound: float, maximize: bool) -> bool:
        """Whether the dual bound proves that no point beats the target.

        Args:
            dual_bound: the solver's dual (best possible) bound.
            maximize: the objective's sense.

        Returns:
            ``dual_bound ≤ proof_level`` when maximising, ``≥`` when minimising.
        """
        return dual_bound <= self.proof_level if maximize else dual_bound >= self.proof_level


_PROBE_OFFSET = 10.0
#: (maximize, cutoff, whether HiGHS must find a solution) on the probe below, whose optimum
#: is 13 when maximising and 7 when minimising (both include the offset).
_PROBE_CASES = ((True, 12.5, True), (True, 13.5, False), (False, 7.5, True), (False, 6.5, False))


def _probe_finds_solution(maximize: bool, objective_bound: float) -> bool:
    """Solve ``opt x + y + 10`` over integers ``x, y ∈ [−5, 5]``, ``|x + y| ≤ 3.5`` under
    ``objective_bound``: whether HiGHS reports an optimum."""
    highs = highspy.Highs()
    for name, value in (("output_flag", False), ("threads", 1), ("objective_bound", objective_bound)):
        highs.setOptionValue(name, value)
    box, row = (np.full(2, -5.0), np.full(2, 5.0)), (np.array([-3.5]), np.array([3.5]))
    matrix = sp.csc_matrix(np.ones((1, 2)))
    highs.passModel(_highs_lp(matrix, np.ones(2), _PROBE_OFFSET, box, row, np.ones(2, bool), maximize))
    highs.run()
    return highs.getModelStatus() == highspy.HighsModelStatus.kOptimal


@functools.cache
def _cutoff_readings() -> dict[bool, tuple[int, int]]:
    """Per sense, the ``(sign, offset weight)`` with which ``objective_bound = sign · (U −
    weight · offset)`` keeps exactly the solutions better than ``U`` on every probe case;
    a sense with no single such reading is absent."""
    readings = {}
    for maximize in (False, True):
        cases = [(cutoff, found) for sense, cutoff, found in _PROBE_CASES if sense == maximize]
        consistent = [
            (sign, weight)
            for sign in ((1, -1) if maximize else (1,))
            for weight in (0, 1)
            if all(
                _probe_finds_solution(maximize, sign * (cutoff - weight * _PROBE_OFFSET)) == found
                for cutoff, found in cases
            )
        ]
        if len(consistent) == 1:
            readings[maximize] = consistent[0]
    return readings


def objective_cutoff(level: float, maximize: bool, offset: float) -> float | None:
    """The HiGHS ``objective_bound`` that keeps only the solutions beyond ``level``.

    Args:
        level: the objective value a solution must beat.
        maximize: the model's sense (beat means ``> level`` when maximising, ``< level`` else).
        offset: the model's objective offset.

    Returns:
        The option's value, or None if this HiGHS reads the option in no way the probes could
        pin down.
    """
    reading = _cutoff_readings().get(maximize)
    if reading is None:
        return None
    sign, weight = reading
    return sign * (level - weight * offset)


def _capped(dual_bound: float | None, level: float, maximize: bool) -> float | None:
    """A dual bound HiGHS reports under a cutoff at ``level``, claiming no more than the
    cutoff proves; an infinite or unknown one is unknown."""
    if dual_bound is None or not math.isfinite(dual_bound):
        return None
    return max(dual_bound, level) if maximize else min(dual_bound, level)


@dataclass
class _Decider:
    """Interrupts HiGHS once the rule's question is answered."""

    rule: DecisionRule
    maximize: bool
    decided: SolveStatus | None = None

    def check(self, event: highspy.cb.HighsCallbackEvent) -> None:
        primal = event.data_out.mip_primal_bound
        dual = event.data_out.mip_dual_bound
        if math.isfinite(primal) and self.rule.beaten(primal, self.maximize):
            self.decided = SolveStatus.DECIDED_ABOVE
        elif math.isfinite(dual) and self.rule.settled(dual, self.maximize):
            self.decided = SolveStatus.DECIDED_AT_MOST
        if self.decided is not None:
            event.interrupt()


def interruptible(callback: highspy.HighsCallback, cancel: Callable[[], bool] | None) -> None:
    """Interrupt HiGHS from ``callback`` (its MIP or simplex interrupt callback) when Ctrl-C
    (inside :func:`prunemip.interrupts.deferred`) or ``cancel`` asks to stop; no callback, and
    no cost, when neither can.

    Args:
        callback: ``highs.cbMipInterrupt`` or ``highs.cbSimplexInterrupt``.
        cancel: the caller's own stop condition, or None.
    """
    if not interrupts.watching() and cancel is None:
        return

    def stop_on_request(event: highspy.cb.HighsCallbackEvent) -> None:
        if interrupts.stopping(cancel):
            event.interrupt()

    callback.subscribe(stop_on_request)


def solve(
    model: MipModel,
    options: HighsOptions | None = None,
    *,
    start: np.ndarray | None = None,
    decide: DecisionRule | None = None,
    on_incumbent: Callable[[np.ndarray], bool] | None = None,
    on_progress: Callable[[float | None, float | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> SolveResult:
    """Solve ``model``; with a ``decide`` rule stop as soon as its question is answered.

    Args:
        model: the MIP to solve.
        options: HiGHS settings (default :class:`HighsOptions`).
        start: a full column vector handed to HiGHS as a starting solution (see
            ``MipModel.solution_from_input``).
        decide: decide mode's rule (see the module docstring); None solves to the gap.
        on_incumbent: sees every improving solution's column values; returning True stops
            the solve with status ``STOPPED``.
        on_progress: sees the incumbent's objective and the dual bound (None while
            infinite), at most every :data:`PROGRESS_SECONDS` while the MIP search runs.
        cancel: polled in the MIP search; True interrupts the solve (status ``INTERRUPTED``),
            as Ctrl-C does inside :func:`prunemip.interrupts.deferred`.

    Returns:
        Status, objective, dual bound, effort and timings, and the best incumbent.
    """
    options = options or HighsOptions()
    highs = highspy.Highs()
    options.apply(highs)
    load_start = time.perf_counter()
    to_highs(model, highs)
    load_seconds = time.perf_counter() - load_start

    start_accepted = None
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = np.asarray(start, dtype=np.float64)
        solution.value_valid = True
        start_accepted = highs.setSolution(solution) == highspy.HighsStatus.kOk

    decider = None
    cutoff_level = None
    if decide is not None:
        decide.check_sense(model.maximize)
        decider = _Decider(decide, model.maximize)
        highs.cbMipInterrupt.subscribe(decider.check)
        highs.cbMipImprovingSolution.subscribe(decider.check)
        cutoff = None
        if model.integrality.any() and "objective_bound" not in options.extra:
            cutoff = objective_cutoff(decide.proof_level, model.maximize, model.objective_offset)
        if cutoff is not None:
            highs.setOptionValue("objective_bound", cutoff)
            cutoff_level = decide.proof_level

    stopped: list[bool] = []
    if on_incumbent is not None:

        def check_incumbent(event: highspy.cb.HighsCallbackEvent) -> None:
            if not stopped and on_incumbent(np.array(event.data_out.mip_solution, dtype=np.float64)):
                stopped.append(True)
                event.interrupt()

        highs.cbMipImprovingSolution.subscribe(check_incumbent)

    if on_progress is not None:
        highs.cbMipInterrupt.subscribe(_throttled(on_progress))

    interruptible(highs.cbMipInterrupt, cancel)

    run_start = time.perf_counter()
    presolve_done: list[float] = []

    def note_presolve(event: highspy.cb.HighsCallbackEvent) -> None:
        if not presolve_done and event.message.lstrip().startswith(("Presolve reductions", "Presolve:")):
            presolve_done.append(time.perf_counter() - run_start)

    highs.cbLogging.subscribe(note_presolve)
    highs.run()
    solve_seconds = time.perf_counter() - run_start
    result = _collect(
        highs, model, decider, cutoff_level, load_seconds, presolve_done, solve_seconds, start_accepted
    )
    if stopped and result.status == SolveStatus.INTERRUPTED:
        return replace(result, status=SolveStatus.STOPPED)
    return result


def _throttled(
    on_progress: Callable[[float | None, float | None], None],
) -> Callable[[highspy.cb.HighsCallbackEvent], None]:
    """A MIP interrupt callback passing the primal and dual bounds on every :data:`PROGRESS_SECONDS`."""
    last = [-math.inf]

    def report(event: highspy.cb.HighsCallbackEvent) -> None:
        now = time.perf_counter()
        if now - last[0] < PROGRESS_SECONDS:
            return
        last[0] = now
        primal, dual = event.data_out.mip_primal_bound, event.data_out.mip_dual_bound
        on_progress(primal if math.isfinite(primal) else None, dual if math.isfinite(dual) else None)

    return report


def _confirmed(
    decider: _Decider, objective: float | None, dual_bound: float | None, maximize: bool
) -> SolveStatus:
    """The callback's verdict if the final incumbent or dual bound still supports it."""
    rule = decider.rule
    if (
        decider.decided == SolveStatus.DECIDED_ABOVE
        and objective is not None
        and rule.beaten(objective, maximize)
    ):
        return SolveStatus.DECIDED_ABOVE
    bound_ok = dual_bound is not None and math.isfinite(dual_bound) and rule.settled(dual_bound, maximize)
    if decider.decided == SolveStatus.DECIDED_AT_MOST and bound_ok:
        return SolveStatus.DECIDED_AT_MOST
    return SolveStatus.INTERRUPTED


def _collect(
    highs: highspy.Highs,
    model: MipModel,
    decider: _Decider | None,
    cutoff_level: float | None,
    load_seconds: float,
    presolve_done: list[float],
    solve_seconds: float,
    start_accepted: bool | None,
) -> SolveResult:
    info = highs.getInfo()
    model_status = highs.getModelStatus()
    status = _MODEL_STATUS.get(model_status, SolveStatus.OTHER)
    solution = None
    objective = None
    if info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible:
        solution = np.array(highs.getSolution().col_value, dtype=np.float64)
        objective = float(info.objective_function_value)
    if model.integrality.any():
        dual_bound = float(info.mip_dual_bound)
        gap = float(info.mip_gap)
    else:
        dual_bound = objective if status == SolveStatus.OPTIMAL else None
        gap = 0.0 if status == SolveStatus.OPTIMAL else None
    if cutoff_level is not None:
        sense = 1.0 if model.maximize else -1.0
        beyond = objective is not None and sense * (objective - cutoff_level) > 0
        if status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE) and not beyond:
            # The search ended with nothing beyond the cutoff: decide mode's question is
            # answered. HiGHS then reports its incumbent (if any) as optimal and a dual bound
            # that can be ±inf or that incumbent: neither is read.
            status, dual_bound, gap = SolveStatus.DECIDED_AT_MOST, cutoff_level, None
        else:
            dual_bound = _capped(dual_bound, cutoff_level, model.maximize)
    if decider is not None and decider.decided is not None and status == SolveStatus.INTERRUPTED:
        status = _confirmed(decider, objective, dual_bound, model.maximize)
    return SolveResult(
        status=status,
        highs_status=highs.modelStatusToString(model_status),
        objective=objective,
        dual_bound=dual_bound if dual_bound is not None and math.isfinite(dual_bound) else None,
        gap=gap if gap is not None and math.isfinite(gap) else None,
        nodes=max(int(info.mip_node_count), 0),
        lp_iterations=max(int(info.simplex_iteration_count), 0),
        load_seconds=load_seconds,
        presolve_seconds=presolve_done[0] if presolve_done else None,
        solve_seconds=solve_seconds,
        solution=solution,
        start_accepted=start_accepted,
    )
