"""Input regions of the MIP: a box, an L∞ ball or an L1 ball, always inside the input box.

* box:  ``lo ≤ x ≤ hi``
* L∞:   ``‖x − x0‖∞ ≤ ε`` ∩ box, i.e. variable bounds ``max(lo, x0 − ε) ≤ x ≤ min(hi, x0 + ε)``
* L1:   ``‖x − x0‖₁ ≤ δ`` ∩ box; its bounding box ``[x0 − δ, x0 + δ] ∩ [lo, hi]`` feeds the
  neuron bounds, the ball itself is one extra row in the MIP.

Every region has a finite bounding box: an unbounded input is an error, never a silent
big-M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from prunemip.errors import PrunemipError

Norm = Literal["box", "linf", "l1"]
#: The norms of a ball around a point; a region is one of these balls (∩ the box) or the box.
BALL_NORMS: tuple[str, ...] = ("linf", "l1")
NORMS: tuple[str, ...] = (*BALL_NORMS, "box")


@dataclass(frozen=True, eq=False)
class InputRegion:
    """A convex input region with a finite bounding box ``[lower, upper]``.

    ``center``/``radius`` define the ball (``None``/0 for a plain box); ``lower``/``upper``
    are the ball's bounding box intersected with the input box.
    """

    norm: Norm
    lower: np.ndarray
    upper: np.ndarray
    center: np.ndarray | None = None
    radius: float = 0.0

    @classmethod
    def box(cls, lower: np.ndarray, upper: np.ndarray) -> InputRegion:
        lo = np.asarray(lower, dtype=np.float64).reshape(-1)
        hi = np.asarray(upper, dtype=np.float64).reshape(-1)
        return cls._checked("box", lo, hi, None, 0.0)

    @classmethod
    def ball(
        cls,
        norm: str,
        center: np.ndarray,
        radius: float,
        domain_lower: np.ndarray,
        domain_upper: np.ndarray,
    ) -> InputRegion:
        """The ``norm`` ball of ``radius`` around ``center``, intersected with the input box."""
        if norm not in BALL_NORMS:
            raise PrunemipError(f"unknown norm {norm!r}; choose linf or l1 (or InputRegion.box for a box)")
        radius = float(radius)
        if not np.isfinite(radius) or radius < 0:
            raise PrunemipError(f"the radius must be a finite number >= 0, got {radius}")
        x0 = np.asarray(center, dtype=np.float64).reshape(-1)
        dom_lo = np.broadcast_to(np.asarray(domain_lower, dtype=np.float64).reshape(-1), x0.shape)
        dom_hi = np.broadcast_to(np.asarray(domain_upper, dtype=np.float64).reshape(-1), x0.shape)
        if not np.all(np.isfinite(x0)):
            raise PrunemipError("the input point contains NaN or Inf")
        outside = (x0 < dom_lo) | (x0 > dom_hi)
        if np.any(outside):
            k = int(np.argmax(outside))
            raise PrunemipError(
                f"input {k} of the point is {x0[k]:g}, outside the input range "
                f"[{dom_lo[k]:g}, {dom_hi[k]:g}]; check the data scaling or --input-range"
            )
        lo = np.maximum(dom_lo, x0 - radius)
        hi = np.minimum(dom_hi, x0 + radius)
        return cls._checked(norm, lo, hi, x0, radius)  # type: ignore[arg-type]

    @classmethod
    def _checked(
        cls, norm: Norm, lo: np.ndarray, hi: np.ndarray, center: np.ndarray | None, radius: float
    ) -> InputRegion:
        if lo.shape != hi.shape:
            raise PrunemipError(f"lower bound has {lo.size} entries, upper bound {hi.size}")
        unbounded = ~(np.isfinite(lo) & np.isfinite(hi))
        if np.any(unbounded):
            k = int(np.argmax(unbounded))
            raise PrunemipError(
                f"input {k} is unbounded ([{lo[k]:g}, {hi[k]:g}]); give the input value range "
                "(--input-range LO HI, a --dataset, or InputSpec bounds)"
            )
        if np.any(lo > hi):
            k = int(np.argmax(lo > hi))
            raise PrunemipError(f"input {k} has an empty range [{lo[k]:g}, {hi[k]:g}]")
        return cls(norm, lo.copy(), hi.copy(), None if center is None else center.copy(), radius)

    @property
    def midpoint(self) -> np.ndarray:
        """A point of the region: the ball's centre projected into it, else the box's middle."""
        return self.project(self.center if self.center is not None else 0.5 * (self.lower + self.upper))

    @property
    def size(self) -> int:
        return int(self.lower.size)

    def distance(self, x: np.ndarray) -> dict[str, float]:
        """L∞ and L1 distances of ``x`` from the center (0 for a plain box)."""
        if self.center is None:
            return {"linf": 0.0, "l1": 0.0}
        diff = np.asarray(x, dtype=np.float64).reshape(-1) - self.center
        return {"linf": float(np.max(np.abs(diff), initial=0.0)), "l1": float(np.sum(np.abs(diff)))}

    def contains(self, x: np.ndarray, tol: float = 0.0) -> bool:
        """Whether ``x`` lies in the region, up to an absolute tolerance ``tol``."""
        point = np.asarray(x, dtype=np.float64).reshape(-1)
        if point.shape != self.lower.shape:
            return False
        if np.any(point < self.lower - tol) or np.any(point > self.upper + tol):
            return False
        return self.norm != "l1" or self.distance(point)["l1"] <= self.radius + tol

    def project(self, x: np.ndarray) -> np.ndarray:
        """Pull a nearly feasible point (e.g. a solver solution) exactly into the region.

        Clips to the bounding box; for the L1 ball, then shrinks ``x − x0`` towards the
        center until ``‖x − x0‖₁ ≤ δ`` (a convex combination of two box points stays in
        the box).
        """
        point = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), self.lower, self.upper)
        if self.norm == "l1" and self.center is not None:
            diff = point - self.center
            norm1 = float(np.sum(np.abs(diff)))
            if norm1 > self.radius:
                # Rounding x0 + s·(x − x0) can leave the ball by ~n ulp(x0), far more than
                # a relative 1e-12 of a small radius: shrink further until the float check
                # passes (at the latest at s = 0, the center itself).
                shrink = 1e-12
                while True:
                    factor = self.radius / norm1 * (1.0 - shrink) if shrink < 1.0 else 0.0
                    candidate = np.clip(self.center + diff * factor, self.lower, self.upper)
                    if factor == 0.0 or self.contains(candidate):
                        return candidate
                    shrink *= 4.0
        return point

    def describe(self) -> str:
        if self.norm == "box":
            return "box"
        return f"{'L∞' if self.norm == 'linf' else 'L1'} ball of radius {self.radius:g}"
