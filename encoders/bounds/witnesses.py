"""A floor under every bounding method: neurons proved unstable by inputs of the region.

Neuron j of a hidden layer is *proved unstable* over a region when two inputs of the
region give ẑ_j > τ and ẑ_j < −τ in the float64 forward pass (τ = 1e-9 covers its
rounding). Then every sound bound has l_j < 0 < u_j, so no bounding method, exact MIP
bounds included, can make the neuron stable: the number proved is a lower bound on the
unstable count of any sound bounds, and ``bounds.n_unstable − proved`` is the most any
tighter method could still gain.

The inputs: the region's midpoint, random points and the exact maximiser and minimiser of
every first-layer pre-activation (:meth:`InputRegion.maximisers
<prunemip.regions.InputRegion.maximisers>`: a box vertex; over an L1 ball ∩ box, the greedy
solution of the fractional knapsack max Σ|w_i| t_i s.t. Σ t_i ≤ δ, 0 ≤ t_i ≤ room_i), so
the first layer's count is exact; then projected steepest ascent on ±ẑ_j (the gradient
attack's steps, :class:`prunemip.regions.Ascent`), one chain per neuron and missing sign,
started from the best point seen so far and batched per layer. Every point evaluated
counts as a witness for every neuron of every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.network import Network
from prunemip.regions import Ascent, InputRegion

#: How far from zero a float64 pre-activation must be to witness a sign.
SIGN_TOLERANCE = 1e-9


@dataclass(frozen=True)
class WitnessedInstability:
    """Per hidden layer: the largest and smallest pre-activation seen at inputs of the region
    (inside every sound bound: ``l ≤ lowest ≤ highest ≤ u``), and the neurons they prove unstable."""

    layers: tuple[int, ...]  #: the network's hidden (ReLU) layers
    highest: tuple[np.ndarray, ...]
    lowest: tuple[np.ndarray, ...]
    points_evaluated: int

    @property
    def proved(self) -> tuple[np.ndarray, ...]:
        """Per hidden layer, the neurons seen both above τ and below −τ."""
        return tuple(
            (high > SIGN_TOLERANCE) & (low < -SIGN_TOLERANCE)
            for high, low in zip(self.highest, self.lowest, strict=True)
        )

    @property
    def n_proved(self) -> int:
        return int(sum(mask.sum() for mask in self.proved))


class _Extremes:
    """The largest and smallest pre-activation seen per neuron, and the inputs that gave them."""

    def __init__(self, n_layers: int) -> None:
        self.high: list[np.ndarray | None] = [None] * n_layers
        self.low: list[np.ndarray | None] = [None] * n_layers
        self.argmax: list[np.ndarray | None] = [None] * n_layers
        self.argmin: list[np.ndarray | None] = [None] * n_layers
        self.count = 0

    def record(self, x: np.ndarray, pre: list[np.ndarray]) -> None:
        self.count += len(x)
        for k in range(len(self.high)):
            z = pre[k]
            top, bottom = np.argmax(z, axis=0), np.argmin(z, axis=0)
            columns = np.arange(z.shape[1])
            high, low = z[top, columns], z[bottom, columns]
            if self.high[k] is None:
                self.high[k], self.low[k] = high, low
                self.argmax[k], self.argmin[k] = x[top], x[bottom]
                continue
            better_high, better_low = high > self.high[k], low < self.low[k]
            self.high[k] = np.where(better_high, high, self.high[k])
            self.low[k] = np.where(better_low, low, self.low[k])
            self.argmax[k][better_high] = x[top[better_high]]
            self.argmin[k][better_low] = x[bottom[better_low]]


def witnessed_unstable(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds | None = None,
    *,
    steps: int = 20,
    samples: int = 64,
    seed: int = 0,
) -> WitnessedInstability:
    """Hidden neurons proved unstable over ``region`` by pairs of its inputs.

    Args:
        network: the network.
        region: the input region.
        bounds: sound bounds for the same region; they spare the search for a sign they exclude.
        steps: ascent steps per chain.
        samples: random points evaluated first.
        seed: the random points' seed.

    Returns:
        Per hidden layer the highest and lowest pre-activations seen, and the neurons they prove
        unstable.
    """
    hidden = [k for k, layer in enumerate(network.layers) if layer.activation == "relu"]
    extremes = _Extremes(len(network.layers))

    def evaluate(x: np.ndarray) -> list[np.ndarray]:
        _, pre = network.forward_with_preactivations(x)
        extremes.record(x, pre)
        return pre

    rng = np.random.default_rng(seed)
    first = network.layers[0].weight.toarray()
    extremes_of_first = [region.maximisers(sign * first) for sign in (1.0, -1.0)]
    evaluate(np.vstack([region.midpoint[None, :], region.sample(rng, samples), *extremes_of_first]))
    ascent = Ascent.of(region)
    for k in hidden:
        width = network.layers[k].n_out
        can_be_positive = np.ones(width, bool) if bounds is None else bounds.upper[k] > 0.0
        can_be_negative = np.ones(width, bool) if bounds is None else bounds.lower[k] < 0.0
        want_high = np.flatnonzero((extremes.high[k] <= SIGN_TOLERANCE) & can_be_positive)
        want_low = np.flatnonzero((extremes.low[k] >= -SIGN_TOLERANCE) & can_be_negative)
        neurons = np.concatenate([want_high, want_low])
        if neurons.size == 0 or ascent.scale <= 0.0:
            continue
        signs = np.concatenate([np.ones(want_high.size), -np.ones(want_low.size)])
        x = np.vstack([extremes.argmax[k][want_high], extremes.argmin[k][want_low]])
        rows = np.arange(neurons.size)
        for step in range(steps):
            pre = evaluate(x) if step else network.forward_with_preactivations(x)[1]
            grad = np.zeros((neurons.size, width))
            grad[rows, neurons] = signs
            x = ascent.step(x, network.input_gradient(pre, grad, layer=k), step, steps)
        evaluate(x)
    return WitnessedInstability(
        tuple(hidden),
        tuple(extremes.high[k] for k in hidden),
        tuple(extremes.low[k] for k in hidden),
        extremes.count,
    )
