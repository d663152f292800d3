"""A quick gradient attack (projected gradient ascent on logit margins), in numpy.

Run before the MIP: its best points seed HiGHS with a good incumbent, and in decide mode
an adversarial point ends the search at once (after the float64 re-check every witness
gets). It is cheap by design — a few restarts of a few dozen steps, batched.

* Objective: the margin ``ẑ_t − ẑ_y`` of a target class ``t`` over the label ``y`` (one
  chain per leading target), and the untargeted ``max_{t≠y} ẑ_t − ẑ_y`` (Carlini & Wagner,
  IEEE S&P 2017) for the random restarts.
* Steps: projected steepest ascent within the region (:class:`prunemip.regions.Ascent`):
  ``x ← Π(x + α sign ∇)`` in a box or an L∞ ball, with α decaying from ``ε/4`` (Madry et
  al., ICLR 2018); in an L1 ball sparse steepest ascent on the coordinates with the
  largest gradient magnitudes (Tramèr & Boneh, NeurIPS 2019), then the exact Euclidean
  projection onto the L1 ball ∩ box (Croce & Hein, ICML 2021).
* Gradients: reverse mode through the sparse layers (:meth:`Network.input_gradient
  <prunemip.network.Network.input_gradient>`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from prunemip.network import Network
from prunemip.regions import L1_STEP_FRACTION, Ascent, InputRegion


@dataclass(frozen=True)
class PgdOptions:
    """How much effort the gradient attack spends."""

    steps: int = 30
    restarts: int = 4  #: random starts of the untargeted chain (plus the centre)
    targets: int = 3  #: leading targets that get their own chain started at the centre
    l1_coordinates: float = L1_STEP_FRACTION  #: fraction of coordinates moved per L1 step (at least 2δ/range)
    seed: int = 0


@dataclass(frozen=True)
class PgdResult:
    """Best point per target (by forward-pass margin), and the effort spent."""

    points: dict[int, np.ndarray] = field(repr=False)
    margins: dict[int, float]
    seconds: float

    @property
    def best_target(self) -> int | None:
        """The target of the largest margin (None without targets)."""
        return max(self.margins, key=self.margins.__getitem__, default=None)

    @property
    def best_margin(self) -> float:
        """The largest margin over the targets (−inf without targets)."""
        return max(self.margins.values(), default=-np.inf)


def pgd_attack(
    network: Network,
    region: InputRegion,
    label: int,
    targets: list[int],
    options: PgdOptions | None = None,
    *,
    deadline: float | None = None,
) -> PgdResult:
    """Maximise the margins of ``targets`` over the region; the best point found per target.

    Args:
        network: the network attacked.
        region: the input region.
        label: the true class ``y``.
        targets: the target classes, most promising first (the first ``options.targets`` get
            their own chain).
        options: the effort (default :class:`PgdOptions`).
        deadline: a ``time.perf_counter()`` after which no further step starts.

    Returns:
        Per target the point of largest forward-pass margin seen, and the time spent.
    """
    options = options or PgdOptions()
    start = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    center = region.midpoint
    chained = targets[: options.targets]
    starts = [np.tile(center, (len(chained), 1))]
    if options.restarts > 0:
        starts.append(np.vstack([center[None, :], region.sample(rng, options.restarts)]))
    x = region.nearest(np.vstack(starts))
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

    ascent = Ascent.of(region, options.l1_coordinates)
    if ascent.scale <= 0.0 or others.size == 0:
        logits, _ = network.forward_with_preactivations(x)
        record(x, logits)
        return PgdResult(best_points, best_margins, time.perf_counter() - start)
    for step in range(options.steps + 1):
        logits, pre = network.forward_with_preactivations(x)
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
        x = ascent.step(x, network.input_gradient(pre, grad_logits), step, options.steps)
    return PgdResult(best_points, best_margins, time.perf_counter() - start)
