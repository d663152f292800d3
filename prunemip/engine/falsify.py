"""A quick gradient attack (projected gradient ascent on logit margins), in numpy.

Run before the MIP: its best points seed HiGHS with a good incumbent, and in decide mode
an adversarial point ends the search at once (after the float64 re-check every witness
gets). It is cheap by design — a few restarts of a few dozen steps, batched.

* Objective: the margin ``ẑ_t − ẑ_y`` of a target class ``t`` over the label ``y`` (one
  chain per leading target), and the untargeted ``max_{t≠y} ẑ_t − ẑ_y`` (Carlini & Wagner,
  IEEE S&P 2017) for the random restarts.
* L∞ (and box) steps: ``x ← Π(x + α sign ∇)``, with α decaying from ``ε/4`` (Madry et al.,
  ICLR 2018). L1 steps: sparse steepest ascent on the coordinates with the largest
  gradient magnitudes (Tramèr & Boneh, NeurIPS 2019), then the exact Euclidean projection
  onto the L1 ball ∩ box: ``d = clip(soft_λ(v − x0), lo − x0, hi − x0)`` with ``λ ≥ 0``
  found by bisection (Croce & Hein, ICML 2021, for the box-constrained L1 ball).
* Gradients: reverse mode through the sparse layers (``∂z_k/∂h_{k−1} = W_k``, ReLU
  masks from the forward pass).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from prunemip.network import Network
from prunemip.regions import InputRegion


@dataclass(frozen=True)
class PgdOptions:
    """How much effort the gradient attack spends."""

    steps: int = 30
    restarts: int = 4  #: random starts of the untargeted chain (plus the centre)
    targets: int = 3  #: leading targets that get their own chain started at the centre
    l1_coordinates: float = 0.05  #: fraction of coordinates moved per L1 step (at least 2δ/range)
    seed: int = 0


@dataclass(frozen=True)
class PgdResult:
    """Best point per target (by forward-pass margin), and the effort spent."""

    points: dict[int, np.ndarray] = field(repr=False)
    margins: dict[int, float]
    seconds: float

    @property
    def best_target(self) -> int | None:
        return max(self.margins, key=self.margins.__getitem__, default=None)

    @property
    def best_margin(self) -> float:
        return max(self.margins.values(), default=-np.inf)


def forward_with_preactivations(network: Network, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and each layer's pre-activations for a batch (2-D even for one row)."""
    pre = [np.atleast_2d(z) for z in network.pre_activations(x)]
    return network.layers[-1].activate(pre[-1]), pre


def input_gradient(
    network: Network, pre: list[np.ndarray], grad_logits: np.ndarray, layer: int | None = None
) -> np.ndarray:
    """∂(Σ grad_logits ⊙ logits)/∂x by reverse mode; with ``layer``, ∂(Σ grad ⊙ ẑ_layer)/∂x
    for that layer's pre-activations ẑ_layer instead."""
    top = len(network.layers) - 1 if layer is None else layer
    g = grad_logits
    for k in range(top, -1, -1):
        current = network.layers[k]
        if current.activation == "relu" and (k < top or layer is None):
            g = g * (pre[k] > 0.0)
        g = np.asarray((current.weight.T @ g.T).T)
    return g


def project_l1_box(points: np.ndarray, region: InputRegion) -> np.ndarray:
    """Euclidean projection of each row onto ``{‖x − x0‖₁ ≤ δ} ∩ [lo, hi]``.

    The projection is ``x0 + sign(v)·min(max(|v| − λ, 0), c)`` (``v = x − x0``, ``c`` the
    room towards ``sign(v)``) with the smallest ``λ ≥ 0`` that meets the budget. The
    budget used, ``f(λ) = Σ_i min(max(|v_i| − λ, 0), c_i)``, is piecewise linear and
    decreasing with breakpoints ``|v_i| − c_i`` and ``|v_i|``: sorting them gives ``λ``
    exactly, in O(n log n) per row.
    """
    assert region.center is not None
    x0, radius = region.center, region.radius
    v = points - x0
    a = np.abs(v)
    room = np.where(v >= 0.0, region.upper - x0, x0 - region.lower)
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
    lam = np.where(
        slope < 0.0, right - (radius - budget_at[rows, crossing]) / np.where(slope < 0.0, -slope, 1.0), right
    )
    lam = np.where(inside, 0.0, np.maximum(lam, 0.0))
    return x0 + np.sign(v) * np.minimum(np.maximum(a - lam[:, None], 0.0), c)


def _project(points: np.ndarray, region: InputRegion) -> np.ndarray:
    if region.norm == "l1" and region.center is not None:
        return project_l1_box(points, region)
    return np.clip(points, region.lower, region.upper)


def random_points(region: InputRegion, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random points of the region (sparse Laplace directions for an L1 ball)."""
    lo, hi = region.lower, region.upper
    if region.norm != "l1" or region.center is None:
        return lo + rng.random((count, lo.size)) * (hi - lo)
    direction = rng.laplace(size=(count, lo.size)) * (rng.random((count, lo.size)) < 0.1)
    norms = np.maximum(np.sum(np.abs(direction), axis=1, keepdims=True), 1e-300)
    return project_l1_box(region.center + direction / norms * region.radius, region)


@dataclass(frozen=True)
class Ascent:
    """Projected steepest-ascent steps within a region (the module docstring's rules)."""

    region: InputRegion
    scale: float  #: the step scale: δ for an L1 ball, half the widest box side otherwise
    coordinates: int  #: coordinates an L1 step moves

    @classmethod
    def of(cls, region: InputRegion, options: PgdOptions) -> Ascent:
        widest = float(np.max(region.upper - region.lower, initial=0.0))
        scale = region.radius if region.norm == "l1" else widest / 2.0
        n = region.size
        # Enough coordinates that a step can spend the budget inside the box (each moves ≤ its range).
        coordinates = max(1, round(options.l1_coordinates * n))
        if region.norm == "l1" and widest > 0.0:
            coordinates = max(coordinates, math.ceil(2.0 * region.radius / widest))
        return cls(region, scale, min(coordinates, n))

    def step(self, x: np.ndarray, g: np.ndarray, step: int, steps: int) -> np.ndarray:
        """Step ``step`` of ``steps`` from the rows ``x`` up their gradients ``g``, projected."""
        alpha = self.scale * 0.5 * (1.0 - step / steps) + self.scale * 0.02
        if self.region.norm != "l1":
            return _project(x + 0.5 * alpha * np.sign(g), self.region)
        # Sparse steepest ascent: move the k coordinates with the largest |gradient|.
        top = np.argpartition(-np.abs(g), self.coordinates - 1, axis=1)[:, : self.coordinates]
        direction = np.zeros_like(g)
        picked = np.take_along_axis(g, top, axis=1)
        norm1 = np.maximum(np.sum(np.abs(picked), axis=1, keepdims=True), 1e-300)
        np.put_along_axis(direction, top, picked / norm1, axis=1)
        return _project(x + alpha * direction, self.region)


def pgd_attack(
    network: Network,
    region: InputRegion,
    label: int,
    targets: list[int],
    options: PgdOptions | None = None,
    *,
    deadline: float | None = None,
) -> PgdResult:
    """Maximise the margins of ``targets`` over the region; the best point found per target."""
    options = options or PgdOptions()
    start = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    center = region.midpoint
    chained = targets[: options.targets]
    starts = [np.tile(center, (len(chained), 1))]
    if options.restarts > 0:
        starts.append(np.vstack([center[None, :], random_points(region, rng, options.restarts)]))
    x = _project(np.vstack(starts), region)
    n_targeted = len(chained)
    best_points: dict[int, np.ndarray] = {}
    best_margins: dict[int, float] = {}
    others = np.array([t for t in range(network.n_outputs) if t != label], dtype=np.int64)

    def record(points: np.ndarray, logits: np.ndarray) -> None:
        margins = logits - logits[:, [label]]
        for t in targets:
            row = int(np.argmax(margins[:, t]))
            if margins[row, t] > best_margins.get(t, -np.inf):
                best_margins[t] = float(margins[row, t])
                best_points[t] = points[row].copy()

    ascent = Ascent.of(region, options)
    if ascent.scale <= 0.0 or others.size == 0:
        logits, _ = forward_with_preactivations(network, x)
        record(x, logits)
        return PgdResult(best_points, best_margins, time.perf_counter() - start)
    for step in range(options.steps + 1):
        logits, pre = forward_with_preactivations(network, x)
        record(x, logits)
        if step == options.steps or (deadline is not None and time.perf_counter() > deadline):
            break
        grad_logits = np.zeros_like(logits)
        rows = np.arange(len(x))
        grad_logits[rows[:n_targeted], chained] = 1.0
        if len(x) > n_targeted:
            rest = rows[n_targeted:]
            strongest = others[np.argmax(logits[rest][:, others], axis=1)]
            grad_logits[rest, strongest] = 1.0
        grad_logits[:, label] -= 1.0
        x = ascent.step(x, input_gradient(network, pre, grad_logits), step, options.steps)
    return PgdResult(best_points, best_margins, time.perf_counter() - start)
