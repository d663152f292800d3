"""Solve a ``MipModel`` with HiGHS (highspy): options, starting point, early stop, results.

Decide mode answers only the sign question "is the optimum above ``threshold``?" and
stops as soon as it is known (the HiGHS counterpart of Gurobi's ``BestObjStop`` /
``BestBdStop`` used by Cacciola et al. 2023): for a maximisation, at the first incumbent
with objective ``> threshold``, or once the dual bound proves ``≤ threshold``. Both
checks run in HiGHS's MIP interrupt and improving-solution callbacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError
from prunemip.solvers.result import SolveResult, SolveStatus

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

    def apply(self, highs: highspy.Highs) -> None:
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
    """Pass ``model`` to a (new) ``highspy.Highs`` instance in one call."""
    highs = highs or highspy.Highs()
    lp = highspy.HighsLp()
    lp.num_col_ = model.n_cols
    lp.num_row_ = model.n_rows
    lp.col_cost_ = model.objective
    lp.offset_ = model.objective_offset
    lp.col_lower_ = model.col_lower
    lp.col_upper_ = model.col_upper
    lp.row_lower_ = model.row_lower
    lp.row_upper_ = model.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = model.matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = model.matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = model.matrix.data
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if integral else highspy.HighsVarType.kContinuous
        for integral in model.integrality
    ]
    lp.sense_ = highspy.ObjSense.kMaximize if model.maximize else highspy.ObjSense.kMinimize
    status = highs.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise PrunemipError("HiGHS refused the model (passModel returned an error)")
    return highs


@dataclass
class _Decider:
    """Stops HiGHS once the optimum's position relative to ``threshold`` is known."""

    threshold: float
    maximize: bool
    decided: SolveStatus | None = None

    def _above(self, value: float) -> bool:
        return value > self.threshold if self.maximize else value < self.threshold

    def check(self, event: highspy.cb.HighsCallbackEvent) -> None:
        primal = event.data_out.mip_primal_bound
        dual = event.data_out.mip_dual_bound
        if math.isfinite(primal) and self._above(primal):
            self.decided = SolveStatus.DECIDED_ABOVE
        elif math.isfinite(dual) and not self._above(dual):
            self.decided = SolveStatus.DECIDED_AT_MOST
        if self.decided is not None:
            event.interrupt()


def solve(
    model: MipModel,
    options: HighsOptions | None = None,
    *,
    start: np.ndarray | None = None,
    decide_threshold: float | None = None,
) -> SolveResult:
    """Solve ``model``; with ``decide_threshold`` stop as soon as the sign question is answered.

    ``start`` is a full column vector handed to HiGHS as a starting solution (see
    ``MipModel.solution_from_input``).
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
    if decide_threshold is not None:
        decider = _Decider(float(decide_threshold), model.maximize)
        highs.cbMipInterrupt.subscribe(decider.check)
        highs.cbMipImprovingSolution.subscribe(decider.check)

    run_start = time.perf_counter()
    presolve_done: list[float] = []

    def note_presolve(event: highspy.cb.HighsCallbackEvent) -> None:
        if not presolve_done and event.message.lstrip().startswith(("Presolve reductions", "Presolve:")):
            presolve_done.append(time.perf_counter() - run_start)

    highs.cbLogging.subscribe(note_presolve)
    highs.run()
    solve_seconds = time.perf_counter() - run_start
    return _collect(highs, model, decider, load_seconds, presolve_done, solve_seconds, start_accepted)


def _collect(
    highs: highspy.Highs,
    model: MipModel,
    decider: _Decider | None,
    load_seconds: float,
    presolve_done: list[float],
    solve_seconds: float,
    start_accepted: bool | None,
) -> SolveResult:
    info = highs.getInfo()
    model_status = highs.getModelStatus()
    status = _MODEL_STATUS.get(model_status, SolveStatus.OTHER)
    if decider is not None and decider.decided is not None and status == SolveStatus.INTERRUPTED:
        status = decider.decided
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
