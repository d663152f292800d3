"""The exact stage of the engine: one conjunction's MIP over the encoded network.

The MIP maximises the conjunction's slack ``s = min_k (d_k − c_k·y)`` subject to ``y = f(x)``,
``x ∈ R`` (the big-M encoding). A one-row conjunction (an attack's margin ``y_t − y_ℓ``) has
its slack as the objective itself; several rows get a free column ``t`` with rows
``c_k·y + t ≤ d_k`` (:func:`~prunemip.engine.slack.with_slack_rows`). In decide mode HiGHS
stops at the first incumbent with ``s > 0`` or once its dual bound proves ``s ≤ −τ`` (the
decision version of Cacciola et al. 2023); in optimize mode it solves to optimality.

Soundness: "unsat" needs a final dual bound ``≤ −τ`` with τ at least what HiGHS's feasibility
tolerances can move ``s`` on this model (``MipModel.tolerance_effect``; Tjeng et al. ICLR
2019 for the MIP, the tolerance argument is prunemip's); "sat" needs a point whose float64
forward pass satisfies the rows, pulled exactly into the region. A solver incumbent with
``s > 0`` whose forward pass does not confirm it is settled by solving on to optimality.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from prunemip.encoders.mip_model import MipModel
from prunemip.engine.slack import slack_tolerance, with_slack_rows
from prunemip.engine.subdomains import OutputRows
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve
from prunemip.solvers.result import SolveResult, SolveStatus

#: Called with every MIP incumbent's input point; True when the forward pass confirmed it.
PointCheck = Callable[[np.ndarray], bool]
#: Called while HiGHS runs with its incumbent's and its dual bound's slack (None: none yet).
BoundsHook = Callable[[float | None, float | None], None]


def combined(first: SolveResult, second: SolveResult) -> SolveResult:
    """``second``'s answer with the effort of both solves.

    Args:
        first: the earlier solve.
        second: the later one.

    Returns:
        The record.
    """
    return replace(
        second,
        nodes=first.nodes + second.nodes,
        lp_iterations=first.lp_iterations + second.lp_iterations,
        load_seconds=first.load_seconds + second.load_seconds,
        solve_seconds=first.solve_seconds + second.solve_seconds,
    )


def not_solved(reason: str, bound: float | None) -> SolveResult:
    """The record of a conjunction settled without a MIP (no effort).

    Args:
        reason: what settled it, e.g. "linear relaxation bound".
        bound: the proven upper bound of its slack, if any.

    Returns:
        A solve record of no nodes and no time.
    """
    return SolveResult(
        status=SolveStatus.DECIDED_AT_MOST if bound is not None else SolveStatus.OTHER,
        highs_status=f"not solved: {reason}",
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


def verdict(result: SolveResult, tolerance: float) -> Literal["unsat", "timeout", "unknown"]:
    """What a finished solve proves of the slack, its incumbent aside.

    "unsat" needs a final dual bound ``≤ −τ``: an incumbent ``≤ 0`` within HiGHS's gap
    (``mip_abs_gap``) or feasibility tolerances can hide a positive optimum.

    Args:
        result: HiGHS's result.
        tolerance: τ.

    Returns:
        "unsat" for a proof; "timeout" when a limit or an interrupt stopped HiGHS; else
        "unknown" (settled within what the tolerances can move the slack).
    """
    if (
        result.status in (SolveStatus.OPTIMAL, SolveStatus.DECIDED_AT_MOST)
        and result.dual_bound is not None
        and result.dual_bound <= -tolerance
    ):
        return "unsat"
    if result.status in (SolveStatus.TIME_LIMIT, SolveStatus.INTERRUPTED, SolveStatus.LIMIT):
        return "timeout"
    return "unknown"


@dataclass(frozen=True)
class MipAnswer:
    """What one conjunction's MIP established: its solve record and its proof threshold."""

    solve: SolveResult
    tolerance: float  #: τ: "unsat" needs the dual bound ≤ −τ
    proved: bool  #: the final dual bound proves ``s ≤ −τ``
    confirmed: bool  #: the check confirmed an incumbent's input


@dataclass(frozen=True)
class ConjunctionMip:
    """One conjunction's slack MIP, with the best given start point as its starting solution."""

    model: MipModel  #: the encoded network, objective: the slack (maximised)
    rows: OutputRows
    start: np.ndarray
    floor: float  #: the least τ, before HiGHS's tolerances are counted

    @classmethod
    def of(
        cls, encoded: MipModel, rows: OutputRows, starts: Sequence[np.ndarray], floor: float
    ) -> ConjunctionMip:
        """The MIP of ``rows`` over ``encoded``, started from the best of ``starts``.

        Args:
            encoded: the encoded network (any objective).
            rows: the conjunction.
            starts: input points of the region (at least one).
            floor: the least proof margin τ.

        Returns:
            The MIP.
        """
        if rows.rhs.size == 1:
            cost = np.zeros(encoded.n_cols)
            cost[encoded.output_columns] = -rows.coefficients[0]
            model = encoded.with_objective(cost, maximize=True, offset=float(rows.rhs[0]))
        else:
            model = with_slack_rows(encoded, rows.coefficients, rows.rhs)
        mip = cls(model, rows, np.empty(0), floor)
        start = max((mip.solution(p) for p in starts), key=model.evaluate_objective)
        return replace(mip, start=start)

    def solution(self, x: np.ndarray) -> np.ndarray:
        """The MIP point of input ``x`` (the slack column, if any, at the forward pass's slack).

        Args:
            x: an input of the region.

        Returns:
            One value per column.
        """
        if self.rows.rhs.size == 1:
            return self.model.solution_from_input(x)
        values = self.model.solution_from_input(x)
        values[-1] = -self.rows.violation(self.model.outputs_from_solution(values))[0]
        return values

    def tolerance(self, options: HighsOptions) -> float:
        """τ under ``options``: the floor, or what their feasibility tolerances can move the slack.

        Args:
            options: the HiGHS settings of a solve.

        Returns:
            τ.
        """
        if self.rows.rhs.size > 1:
            return max(self.floor, slack_tolerance(self.model, self.rows.coefficients, options))
        feasibility = options.feasibility_tolerance  # HiGHS's bound on row, bound and integrality violations
        return max(self.floor, self.model.tolerance_effect(feasibility, feasibility))

    def solve(
        self,
        options: HighsOptions,
        deadline: float,
        *,
        decide: bool,
        stop: bool,
        check: PointCheck,
        start: np.ndarray | None = None,
        on_bounds: BoundsHook | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> MipAnswer:
        """Solve until ``deadline``, every incumbent's input offered to ``check``.

        In decide mode HiGHS stops once the dual bound proves ``s ≤ −τ`` or an incumbent has
        ``s > 0``; an incumbent of slack > 0 that ``check`` does not confirm is then settled by
        solving on to optimality.

        Args:
            options: HiGHS settings (their time limit is replaced by the time left).
            deadline: a ``time.perf_counter()`` value.
            decide: decide mode (else HiGHS solves to its gap).
            stop: stop at the first incumbent ``check`` confirms.
            check: the forward-pass check of a candidate input.
            start: a full MIP point to start from (default: :attr:`start`).
            on_bounds: sees the incumbent's and the dual bound's slack while HiGHS runs.
            cancel: polled while HiGHS runs; True ends the solve (interrupted) as Ctrl-C does.

        Returns:
            The solve record, τ and whether the dual bound proves ``s ≤ −τ``.
        """
        tolerance = self.tolerance(options)
        confirmed: list[bool] = []

        def offer(values: np.ndarray) -> bool:
            if check(self.model.inputs_from_solution(values)):
                confirmed.append(True)
            return bool(confirmed) and stop

        rule = DecisionRule(target=0.0, proof=-tolerance) if decide else None
        result = solve(
            self.model,
            _until(options, deadline),
            start=self.start if start is None else start,
            decide=rule,
            on_incumbent=offer,
            on_progress=on_bounds,
            cancel=cancel,
        )
        if result.solution is not None and not confirmed:  # a start HiGHS kept is not offered
            offer(result.solution)
        unconfirmed = result.objective is not None and result.objective > 0.0 and not confirmed
        if decide and unconfirmed and result.solution is not None and time.perf_counter() < deadline:
            # The solver's slack is positive only within its tolerances: settle it by optimising.
            again = solve(
                self.model,
                _until(options, deadline),
                start=result.solution,
                on_incumbent=offer,
                on_progress=on_bounds,
                cancel=cancel,
            )
            result = combined(result, again)
        return MipAnswer(result, tolerance, verdict(result, tolerance) == "unsat", bool(confirmed))


def _until(options: HighsOptions, deadline: float) -> HighsOptions:
    return replace(options, time_limit=max(deadline - time.perf_counter(), 1e-3))
