"""What a running query reports to a live status line: one :class:`Progress` per disjunct.

Slacks are the spec's (:mod:`prunemip.engine.spec`): for an attack the margin ``y_t − y_ℓ``,
for a property the smallest ``d_k − c_k·y`` of a disjunct. ``best`` is the largest slack of a
point checked by the float64 forward pass (> 0, or ≥ 0 on non-strict rows, settles ``sat``);
``bound`` is a proven upper bound of the slack over the region (≤ −τ settles ``unsat``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One disjunct's state: where the search is and what it knows."""

    name: str  #: the disjunct's label ("target 3", "disjunct 2")
    stage: str  #: falsify, bounds, bab, surrogate, mip, or the final status once settled
    elapsed: float  #: seconds since the query started
    best: float | None = None  #: the best checked slack so far
    bound: float | None = None  #: the best proven upper bound of the slack so far
    open_subdomains: int | None = None  #: branch and bound's open subdomains
    settled: bool = False  #: the disjunct's status is final

    def line(self) -> str:
        """The status line, e.g. ``target 3  bab  12.3 s  best −0.412  bound ≤ 1.07  open 96``.

        Returns:
            One line of text.
        """
        parts = [self.name, self.stage, f"{self.elapsed:.1f} s"]
        if self.best is not None:
            parts.append(f"best {self.best:.4g}")
        if self.bound is not None:
            parts.append(f"bound ≤ {self.bound:.4g}")
        if self.open_subdomains is not None:
            parts.append(f"open {self.open_subdomains}")
        return "  ".join(parts)


ProgressHook = Callable[[Progress], None]
