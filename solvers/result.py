"""What a MIP solve returns, independent of the solver that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class SolveStatus(StrEnum):
    """Outcome of a solve. ``DECIDED_*`` mean decide mode stopped early with the answer."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    LIMIT = "limit"
    INTERRUPTED = "interrupted"
    DECIDED_ABOVE = "decided_above"  #: an incumbent beats the threshold
    DECIDED_AT_MOST = "decided_at_most"  #: the dual bound proves nothing beats it
    STOPPED = "stopped"  #: the caller's incumbent check asked to stop
    OTHER = "other"


@dataclass(frozen=True, eq=False)
class SolveResult:
    """Status, bounds, effort and timings of one solve; ``solution`` is the best incumbent."""

    status: SolveStatus
    highs_status: str
    objective: float | None
    dual_bound: float | None
    gap: float | None
    nodes: int
    lp_iterations: int
    load_seconds: float
    presolve_seconds: float | None
    solve_seconds: float
    solution: np.ndarray | None = field(repr=False)
    start_accepted: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the solution vector)."""
        return {
            "status": self.status.value,
            "highs_status": self.highs_status,
            "objective": self.objective,
            "dual_bound": self.dual_bound,
            "gap": self.gap,
            "nodes": self.nodes,
            "lp_iterations": self.lp_iterations,
            "load_seconds": self.load_seconds,
            "presolve_seconds": self.presolve_seconds,
            "solve_seconds": self.solve_seconds,
            "start_accepted": self.start_accepted,
        }
