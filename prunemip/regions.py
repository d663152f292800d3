"""Input regions of the MIP: a box, an L∞ ball or an L1 ball, always inside the input box.

* box:  ``lo ≤ x ≤ hi``
* L∞:   ``‖x − x0‖∞ ≤ ε`` ∩ box, i.e. variable bounds ``max(lo, x0 − ε) ≤ x ≤ min(hi, x0 + ε)``
* L1:   ``‖x − x0‖₁ ≤ δ`` ∩ box; its bounding box ``[x0 − δ, x0 + δ] ∩ [lo, hi]`` feeds the
  neuron bounds, the ball itself is one extra row in the MIP.

Every region has a finite bounding box: an unbounded input is an error, never a silent
big-M.

The region owns its norm's maths, as auto_LiRPA's ``Perturbation.concretize`` does (Xu et
al., "Automatic Perturbation Analysis for Scalable Certified Robustness and Beyond",
NeurIPS 2020), so that bounds, encoders and attacks never branch on the norm:

* the support function ``h(c) = max_{x ∈ R} cᵀx`` (``support``, float-sound; ``support_torch``
  for α-CROWN) and a maximiser (``maximisers``). A box gives ``c⁺ hi + c⁻ lo``; an L1 ball ∩
  box ``{x0 + d : ‖d‖₁ ≤ δ, lo ≤ x0 + d ≤ hi}`` is a fractional knapsack: for every ``λ ≥ 0``
  (Lagrangian duality of the budget row) ``h(c) ≤ cᵀx0 + λδ + Σ_i cap_i·max(|c_i| − λ, 0)``,
  ``cap_i`` the room towards the sign of ``c_i``; the greedy threshold ``λ`` (fill
  coordinates by decreasing ``|c_i|`` until the budget is spent) makes it the maximum;
* the Euclidean projection (``nearest``), the exact pull of a nearly feasible point into the
  region (``project``), random points (``sample``), projected steepest ascent
  (``steepest_ascent``, :class:`Ascent`) and the L1 row for the MIP (``budget_split``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from prunemip.errors import PrunemipError
from prunemip.rounding import round_up_nonnegative

if TYPE_CHECKING:
    import torch

Norm = Literal["box", "linf", "l1"]
#: The norms of a ball around a point; a region is one of these balls (∩ the box) or the box.
BALL_NORMS: tuple[str, ...] = ("linf", "l1")
NORMS: tuple[str, ...] = (*BALL_NORMS, "box")
#: Fraction of the coordinates one steepest-ascent step in an L1 ball moves (see :class:`Ascent`).
L1_STEP_FRACTION = 0.05


class Support(NamedTuple):
    """``max_x c x`` per row ``c`` over a region, computed in float64.

    The exact maximum for the float rows given is at most ``value + γ_terms · magnitude``
    (Higham's ``γ_n = n·u/(1 − n·u)``, *Accuracy and Stability of Numerical Algorithms*,
    §3.1); ``value`` equals it up to rounding.
    """

    value: np.ndarray
    magnitude: np.ndarray
    terms: int


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
        """The box ``lower ≤ x ≤ upper``.

        Args:
            lower: lower bound per input (any shape, flattened).
            upper: upper bound per input.

        Returns:
            The region; :class:`PrunemipError` if a bound is infinite or ``lower > upper``.
        """
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
        """The ``norm`` ball of ``radius`` around ``center``, intersected with the input box.

        Args:
            norm: ``"linf"`` or ``"l1"``.
            center: the ball's centre, inside the input box.
            radius: a finite radius ``≥ 0``.
            domain_lower: the input box's lower bounds (a scalar or one per input).
            domain_upper: the input box's upper bounds.

        Returns:
            The region; :class:`PrunemipError` for an unknown norm, a bad radius, a centre
            that is not finite or lies outside the input box, or an unbounded input.
        """
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

    # ----------------------------------------------------------------- shape
    @property
    def is_box(self) -> bool:
        """Whether the region is its bounding box ``[lower, upper]`` (a box or an L∞ ball)."""
        return self.norm != "l1" or self.center is None

    @property
    def midpoint(self) -> np.ndarray:
        """A point of the region: the ball's centre projected into it, else the box's middle."""
        return self.project(self.center if self.center is not None else 0.5 * (self.lower + self.upper))

    @property
    def size(self) -> int:
        """The number of inputs."""
        return int(self.lower.size)

    def budget_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The L1 row in lifted form: ``x = x0 + p − n``, ``p, n ≥ 0``, ``Σ (p + n) ≤ δ``.

        Returns:
            ``None`` when the region is its bounding box; for an L1 ball the centre ``x0``
            and the upper bounds ``min(δ, hi − x0)`` of ``p`` and ``min(δ, x0 − lo)`` of ``n``.
        """
        if self.is_box:
            return None
        x0 = self._center
        return x0, np.minimum(self.radius, self.upper - x0), np.minimum(self.radius, x0 - self.lower)

    def describe(self) -> str:
        """A short name such as ``L∞ ball of radius 0.1``."""
        if self.norm == "box":
            return "box"
        return f"{'L∞' if self.norm == 'linf' else 'L1'} ball of radius {self.radius:g}"

    @property
    def _center(self) -> np.ndarray:  # for callers that checked is_box
        assert self.center is not None, "only a ball has a centre"
        return self.center

    # ----------------------------------------------------------------- membership
    def distance(self, x: np.ndarray) -> dict[str, float]:
        """L∞ and L1 distances of ``x`` from the center (0 for a plain box).

        Args:
            x: a point with :attr:`size` entries.

        Returns:
            ``{"linf": ‖x − x0‖∞, "l1": ‖x − x0‖₁}``.
        """
        if self.center is None:
            return {"linf": 0.0, "l1": 0.0}
        diff = np.asarray(x, dtype=np.float64).reshape(-1) - self.center
        return {"linf": float(np.max(np.abs(diff), initial=0.0)), "l1": float(np.sum(np.abs(diff)))}

    def contains(self, x: np.ndarray, tol: float = 0.0) -> bool:
        """Whether ``x`` lies in the region, up to an absolute tolerance ``tol``.

        Args:
            x: a point (any shape; a wrong size is not contained).
            tol: slack allowed on every bound and on the L1 budget.

        Returns:
            Whether ``x`` is in the region.
        """
        point = np.asarray(x, dtype=np.float64).reshape(-1)
        if point.shape != self.lower.shape:
            return False
        if np.any(point < self.lower - tol) or np.any(point > self.upper + tol):
            return False
        return self.is_box or self.distance(point)["l1"] <= self.radius + tol

    # ----------------------------------------------------------------- projections
    def project(self, x: np.ndarray) -> np.ndarray:
        """Pull a nearly feasible point (e.g. a solver solution) exactly into the region.

        Clips to the bounding box; for the L1 ball, then shrinks ``x − x0`` towards the
        center until ``‖x − x0‖₁ ≤ δ`` (a convex combination of two box points stays in
        the box). Not the Euclidean projection (:meth:`nearest`), but its result passes
        :meth:`contains` in float64.

        Args:
            x: a point with :attr:`size` entries.

        Returns:
            A point of the region.
        """
        point = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), self.lower, self.upper)
        if self.is_box:
            return point
        x0 = self._center
        diff = point - x0
        norm1 = float(np.sum(np.abs(diff)))
        if norm1 <= self.radius:
            return point
        # Rounding x0 + s·(x − x0) can leave the ball by ~n ulp(x0), far more than a relative
        # 1e-12 of a small radius: shrink further until the float check passes (at the latest
        # at s = 0, the center itself).
        shrink = 1e-12
        while True:
            factor = self.radius / norm1 * (1.0 - shrink) if shrink < 1.0 else 0.0
            candidate = np.clip(x0 + diff * factor, self.lower, self.upper)
            if factor == 0.0 or self.contains(candidate):
                return candidate
            shrink *= 4.0

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """The Euclidean projection of each row onto the region.

        A box clips. For ``{‖x − x0‖₁ ≤ δ} ∩ [lo, hi]`` the projection is
        ``x0 + sign(v)·min(max(|v| − λ, 0), c)`` (``v = x − x0``, ``c`` the room towards
        ``sign(v)``) with the smallest ``λ ≥ 0`` that meets the budget (Croce & Hein, "Mind
        the Box: l1-APGD for Sparse Adversarial Attacks on Image Classifiers", ICML 2021).
        The budget used, ``f(λ) = Σ_i min(max(|v_i| − λ, 0), c_i)``, is piecewise linear and
        decreasing with breakpoints ``|v_i| − c_i`` and ``|v_i|``: sorting them gives ``λ``
        exactly, in O(n log n) per row.

        Args:
            points: shape ``(batch, size)``.

        Returns:
            The projected points, shape ``(batch, size)``.
        """
        if self.is_box:
            return np.clip(points, self.lower, self.upper)
        x0, radius = self._center, self.radius
        v = points - x0
        a = np.abs(v)
        room = np.where(v >= 0.0, self.upper - x0, x0 - self.lower)
        c = np.minimum(np.maximum(room, 0.0), a)
        used = np.sum(c, axis=1)
        inside = used <= radius
        if inside.all():
            return x0 + np.sign(v) * c
        b = a - c
        moving = (c > 0.0).astype(np.float64)
        breakpoints = np.concatenate([b, a], axis=1)
        change = np.concatenate([-moving, moving], axis=1)
        order = np.argsort(breakpoints, axis=1, kind="stable")
        points_sorted = np.take_along_axis(breakpoints, order, axis=1)
        slope_after = np.cumsum(np.take_along_axis(change, order, axis=1), axis=1)
        slope_before = np.concatenate([np.zeros((len(v), 1)), slope_after[:, :-1]], axis=1)
        gaps = np.diff(np.concatenate([np.zeros((len(v), 1)), points_sorted], axis=1), axis=1)
        budget_at = used[:, None] + np.cumsum(slope_before * gaps, axis=1)  # f at each breakpoint
        crossing = np.argmax(budget_at <= radius, axis=1)  # first breakpoint within budget
        rows = np.arange(len(v))
        right = points_sorted[rows, crossing]
        slope = slope_before[rows, crossing]
        back = (radius - budget_at[rows, crossing]) / np.where(slope < 0.0, -slope, 1.0)  # back to f = δ
        lam = np.where(slope < 0.0, right - back, right)
        lam = np.where(inside, 0.0, np.maximum(lam, 0.0))
        return x0 + np.sign(v) * np.minimum(np.maximum(a - lam[:, None], 0.0), c)

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Random points: uniform in a box; in an L1 ball sparse Laplace directions, projected.

        Args:
            rng: the random generator.
            count: how many points.

        Returns:
            Shape ``(count, size)``.
        """
        lo, hi = self.lower, self.upper
        if self.is_box:
            return lo + rng.random((count, lo.size)) * (hi - lo)
        direction = rng.laplace(size=(count, lo.size)) * (rng.random((count, lo.size)) < 0.1)
        norms = np.maximum(np.sum(np.abs(direction), axis=1, keepdims=True), 1e-300)
        return self.nearest(self._center + direction / norms * self.radius)

    # ----------------------------------------------------------------- support function
    def support(self, rows: np.ndarray) -> Support:
        """``max_x c x`` over the region for every row ``c`` of ``rows``, float-sound.

        A box: ``c⁺ hi + c⁻ lo``. An L1 ball: the module docstring's Lagrangian form with the
        greedy ``λ`` and the rooms rounded up (a larger box only relaxes the maximum).

        Args:
            rows: shape ``(m, size)``.

        Returns:
            The maxima and the bound on their float64 rounding error (:class:`Support`).
        """
        lo, hi = self.lower, self.upper
        n = lo.size
        if self.is_box:
            magnitude = np.maximum(np.abs(lo), np.abs(hi))
            value = np.maximum(rows, 0.0) @ hi + np.minimum(rows, 0.0) @ lo
            return Support(value, np.abs(rows) @ magnitude, n + 2)
        x0, radius = self._center, self.radius
        room_up = round_up_nonnegative(np.maximum(hi - x0, 0.0))
        room_down = round_up_nonnegative(np.maximum(x0 - lo, 0.0))
        weight = np.abs(rows)
        room = np.where(rows > 0.0, room_up, room_down)
        # The greedy threshold: fill coordinates by decreasing |c_i| until the budget δ is used.
        order = np.argsort(-weight, axis=1, kind="stable")
        sorted_weight = np.take_along_axis(weight, order, axis=1)
        filled = np.cumsum(np.take_along_axis(room, order, axis=1), axis=1)
        reaches = filled >= radius
        first = np.argmax(reaches, axis=1)
        index = np.arange(rows.shape[0])
        threshold = (
            np.where(reaches[index, first], sorted_weight[index, first], 0.0) if n else np.zeros(len(index))
        )
        excess = np.maximum(weight - threshold[:, None], 0.0)
        value = rows @ x0 + threshold * radius + np.sum(room * excess, axis=1)
        magnitude = weight @ np.abs(x0) + threshold * radius + np.sum(room * weight, axis=1)
        return Support(value, magnitude, n + 3)

    def support_torch(self, rows: torch.Tensor) -> torch.Tensor:
        """``max_x c x`` per row, differentiable in ``rows`` (torch, float64; α-CROWN).

        As :meth:`support` without its error bound. For the L1 ball the greedy threshold
        ``λ`` is held constant: the value is an upper bound for every ``λ ≥ 0`` and, by
        Danskin's theorem, its gradient at the optimal ``λ`` is the gradient of the maximum.

        Args:
            rows: a float64 tensor of shape ``(m, size)``.

        Returns:
            The maxima, shape ``(m,)``.
        """
        import torch

        lo, hi = torch.from_numpy(self.lower), torch.from_numpy(self.upper)
        if self.is_box:
            return rows.clamp(min=0.0) @ hi + rows.clamp(max=0.0) @ lo
        x0 = torch.from_numpy(self._center)
        weight = rows.abs()
        room = torch.where(rows > 0.0, (hi - x0).clamp(min=0.0), (x0 - lo).clamp(min=0.0))
        with torch.no_grad():
            sorted_weight, order = torch.sort(weight, dim=1, descending=True, stable=True)
            reaches = torch.cumsum(torch.gather(room, 1, order), dim=1) >= self.radius
            first = torch.argmax(reaches.to(torch.int8), dim=1, keepdim=True)
            at_first = torch.gather(sorted_weight, 1, first)
            threshold = torch.where(torch.gather(reaches, 1, first), at_first, 0.0)
        excess = (weight - threshold).clamp(min=0.0)
        return rows @ x0 + threshold.squeeze(1) * self.radius + torch.sum(room * excess, dim=1)

    def maximisers(self, rows: np.ndarray) -> np.ndarray:
        """Row j: a point of the region that maximises ``rows[j] · x``.

        A box vertex; over an L1 ball ∩ box the greedy solution of the fractional knapsack
        ``max Σ|c_i| t_i`` s.t. ``Σ t_i ≤ δ``, ``0 ≤ t_i ≤ room_i``.

        Args:
            rows: dense, shape ``(m, size)``.

        Returns:
            Shape ``(m, size)``.
        """
        lo, hi = self.lower, self.upper
        if self.is_box:
            return np.where(rows > 0.0, hi, lo)
        x0 = self._center
        room = np.where(rows > 0.0, hi - x0, x0 - lo) * (rows != 0.0)
        order = np.argsort(-np.abs(rows), axis=1, kind="stable")
        room_sorted = np.take_along_axis(room, order, axis=1)
        spent_before = np.cumsum(room_sorted, axis=1) - room_sorted
        take = np.zeros_like(rows)
        np.put_along_axis(take, order, np.clip(self.radius - spent_before, 0.0, room_sorted), axis=1)
        return np.clip(x0 + np.sign(rows) * take, lo, hi)

    # ----------------------------------------------------------------- steepest ascent
    def steepest_ascent(self, gradient: np.ndarray, coordinates: int) -> np.ndarray:
        """Per row, a direction ``d`` of unit norm that maximises ``gradientᵀd``.

        A box (L∞ unit ball): ``sign(g)`` (Madry et al., ICLR 2018). An L1 ball: ``g`` on its
        ``coordinates`` largest ``|g_i|``, scaled to ``‖d‖₁ = 1`` (sparse steepest ascent,
        Tramèr & Boneh, NeurIPS 2019; the exact L1 maximiser moves one coordinate).

        Args:
            gradient: shape ``(batch, size)``.
            coordinates: how many coordinates an L1 step moves (``1 ≤ coordinates ≤ size``).

        Returns:
            Shape ``(batch, size)``.
        """
        if self.is_box:
            return np.sign(gradient)
        top = np.argpartition(-np.abs(gradient), coordinates - 1, axis=1)[:, :coordinates]
        direction = np.zeros_like(gradient)
        picked = np.take_along_axis(gradient, top, axis=1)
        norm1 = np.maximum(np.sum(np.abs(picked), axis=1, keepdims=True), 1e-300)
        np.put_along_axis(direction, top, picked / norm1, axis=1)
        return direction


@dataclass(frozen=True)
class Ascent:
    """Projected steepest-ascent steps within a region: ``x ← Π(x + α d)``.

    ``d`` is :meth:`InputRegion.steepest_ascent` of the gradient, ``Π`` the Euclidean
    projection :meth:`InputRegion.nearest`, and ``α`` decays linearly over the steps from
    0.52 to 0.02 times :attr:`scale`: the L1 radius ``δ`` (a step spends at most the
    budget), else a quarter of the widest side of the box (a sign step moves every
    coordinate by ``α``: from ``ε/4`` in an L∞ ball).
    """

    region: InputRegion
    scale: float
    coordinates: int  #: coordinates an L1 step moves

    @classmethod
    def of(cls, region: InputRegion, l1_fraction: float = L1_STEP_FRACTION) -> Ascent:
        """The steps in ``region``.

        Args:
            region: where the points stay.
            l1_fraction: fraction of the coordinates an L1 step moves; at least ``2δ`` over the widest
                side, so that a step can spend the budget in the box (a coordinate moves ≤ its range).

        Returns:
            The ascent.
        """
        widest = float(np.max(region.upper - region.lower, initial=0.0))
        n = region.size
        coordinates = max(1, round(l1_fraction * n))
        if region.is_box:
            return cls(region, widest / 4.0, min(coordinates, n))
        if widest > 0.0:
            coordinates = max(coordinates, math.ceil(2.0 * region.radius / widest))
        return cls(region, region.radius, min(coordinates, n))

    def step(self, x: np.ndarray, gradient: np.ndarray, step: int, steps: int) -> np.ndarray:
        """Step ``step`` of ``steps`` from the rows ``x`` up their gradients, projected.

        Args:
            x: points of the region, shape ``(batch, size)``.
            gradient: the gradients at ``x``, same shape.
            step: the step's index, ``0 ≤ step < steps``.
            steps: the number of steps of the schedule.

        Returns:
            The new points, in the region.
        """
        alpha = self.scale * 0.5 * (1.0 - step / steps) + self.scale * 0.02
        return self.region.nearest(x + alpha * self.region.steepest_ascent(gradient, self.coordinates))
