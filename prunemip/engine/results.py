"""What an adversarial search reports: witnesses re-checked by a forward pass, per-target
outcomes and the attack's result.

A witness is never the solver's word: its point is pulled exactly into the region
(:meth:`InputRegion.project <prunemip.regions.InputRegion.project>`) and its margin
``ẑ_t − ẑ_y`` is the float64 forward pass's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from prunemip.encoders.mip_model import EncodingStats
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.result import SolveResult

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
        """Whether the point lies in the region with a margin > 0."""
        return self.in_region and self.margin > 0.0


def check_witness(network: Network, region: InputRegion, x: np.ndarray, target: int, label: int) -> Witness:
    """Project ``x`` exactly into the region and re-evaluate the margin in float64.

    Args:
        network: the network whose margin counts.
        region: the input region.
        x: a candidate point (e.g. a solver solution's inputs).
        target: the class whose margin over ``label`` is measured.
        label: the true class.

    Returns:
        The witness at the projected point.
    """
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


@dataclass(frozen=True)
class TargetOutcome:
    """What the MIP of one target class established."""

    target: int
    status: AttackStatus
    solve: SolveResult
    witness: Witness | None
    proof_tolerance: float  #: "robust" needed a dual bound ≤ −proof_tolerance

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the outcome and its solve."""
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
    interrupted: bool = False  #: Ctrl-C ended the search: the best result so far

    @property
    def found(self) -> bool:
        """Whether a verified adversarial example (or a misclassified input) was found."""
        return self.witness is not None and self.witness.is_adversarial

    @property
    def best_margin(self) -> float | None:
        """The witness's forward-pass margin, if there is a witness."""
        return None if self.witness is None else self.witness.margin

    @property
    def solve_seconds(self) -> float:
        """HiGHS's time over every target."""
        return sum(outcome.solve.solve_seconds for outcome in self.targets)

    @property
    def nodes(self) -> int:
        """Branch-and-bound nodes over every target."""
        return sum(outcome.solve.nodes for outcome in self.targets)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (the ``--json`` output of ``prunemip attack``)."""
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
            "interrupted": self.interrupted,
        }


def best_witness(outcomes: Sequence[TargetOutcome]) -> Witness | None:
    """The in-region witness with the largest margin over the targets' outcomes.

    Args:
        outcomes: the targets' outcomes.

    Returns:
        That witness, or None.
    """
    witnesses = [o.witness for o in outcomes if o.witness is not None and o.witness.in_region]
    return max(witnesses, key=lambda w: w.margin, default=None)


def overall_status(outcomes: Sequence[TargetOutcome], n_targets: int) -> AttackStatus:
    """The attack's status from its targets': adversarial if any is; robust only when all
    ``n_targets`` are; unknown when all were solved and none timed out; else timeout.

    Args:
        outcomes: the outcomes of the targets solved (or proved by bounds), in order.
        n_targets: how many targets the attack had.

    Returns:
        The status.
    """
    statuses = [o.status for o in outcomes]
    if "adversarial" in statuses:
        return "adversarial"
    if len(outcomes) == n_targets and all(s == "robust" for s in statuses):
        return "robust"
    if "unknown" in statuses and "timeout" not in statuses and len(outcomes) == n_targets:
        return "unknown"
    return "timeout"
