"""Regularisers that make a network cheaper to encode as a MIP: L1 and ReLU stability.

* L1 — λ·Σ_l ‖W_l‖₁ over every weight (biases excluded): pushes weights to zero.
* RS — the ReLU-stability loss of Xiao et al., *Training for faster adversarial
  robustness verification via inducing ReLU stability* (ICLR 2019):
  RS = −Σ_j tanh(1 + l_j·u_j) summed over hidden neurons, averaged over the batch, where
  [l_j, u_j] bound neuron j's pre-activation over an input ball around each training
  input (intersected with the data's box). It is smallest when l and u share a sign,
  i.e. the neuron is stable, so a big-M encoding needs no binary for it. One term per
  ball: the L∞ ball ‖x − x0‖∞ ≤ ε of the paper and, for attacks over an L1 ball
  ‖x − x0‖₁ ≤ δ (Cacciola et al.'s protocol), that ball too.

Two ways to bound (``rs_bounds``), both differentiable:

* ``ia`` (the paper's): interval arithmetic in centre/radius form, c' = W c + b,
  r' = |W| r (the same box as W⁺u + W⁻l + b and W⁺l + W⁻u + b), started on the ball's
  bounding box.
* ``crown``: the linear relaxation of prunemip's encoder (CROWN, Zhang et al., NeurIPS
  2018), by backward substitution per image: z_k ≤ Λx + c with each earlier ReLU replaced
  by its upper line a_u·z + c_u (a_u = u/(u − l), c_u = −ul/(u − l)) where Λ's entry is
  positive and its lower line a_l·z (a_l = 1 if u ≥ −l, else 0) where it is negative; the
  lower bound swaps the two. Interval bounds grow with depth until l·u ≪ −1, where
  tanh(1 + l·u) is flat and the RS loss has no gradient; the linear relaxation keeps the
  deep layers' l·u informative. It costs a (n_k × n_in) matrix per neuron layer and
  image, so it runs on the first :data:`CROWN_IMAGES` images of each (shuffled) batch,
  and only over the neurons neuron pruning kept (the removed ones are exact zeros). The
  measured saturation and step times are in ``experiments/benchmarks/README.md``.

Over an L1 ball, a linear function is also bounded by Hölder's inequality,
|λ·(x − x0)| ≤ δ·‖λ‖∞, which is what makes the bounds useful there: the bounding box of a
δ = 5 ball is the whole pixel box. Every bound is intersected with the interval one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunemip.pruning.config import RS_BOUNDS
from prunemip.pruning.masks import linear_layers
from prunemip.pruning.training import Callback
from prunemip.regions import BALL_NORMS

LayerBounds = list[tuple[torch.Tensor, torch.Tensor]]
#: An RS ball: its norm (``"linf"`` or ``"l1"``) and radius.
Ball = tuple[str, float]


def _interval(layer: nn.Linear, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centre = nn.functional.linear((high + low) / 2, layer.weight, layer.bias)
    radius = nn.functional.linear((high - low) / 2, layer.weight.abs())
    return centre - radius, centre + radius


def interval_bounds(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor) -> LayerBounds:
    """Pre-activation bounds ``(l, u)`` of every hidden layer for inputs in ``[lower, upper]``.

    Args:
        model: the MLP.
        lower: the inputs' lower bounds, shape ``(batch, ...)`` (flattened per row).
        upper: their upper bounds, same shape.

    Returns:
        One ``(l, u)`` per hidden layer, each of shape ``(batch, n_out)``, differentiable in the weights.
    """
    layers = linear_layers(model)
    return _hidden_bounds(layers, _interval(layers[0], lower.flatten(1), upper.flatten(1)))


#: Images of each batch whose balls the ``crown`` RS bounds cover.
CROWN_IMAGES = 8


class _Ball:
    """The ball of one norm and radius around each image, within ``box``: its bounding box
    and the largest value of a linear function λ·x over it."""

    def __init__(self, images: torch.Tensor, ball: Ball, box: tuple[float, float]) -> None:
        self.norm, self.radius = ball
        if self.norm not in BALL_NORMS:
            raise ValueError(f"unknown RS ball norm {self.norm!r}; choose linf or l1")
        self.x0 = images.flatten(1)
        self.low = (self.x0 - self.radius).clamp(*box)
        self.high = (self.x0 + self.radius).clamp(*box)

    def first_layer(self, layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds of ``layer``'s pre-activations over the ball (its weights shared by all images)."""
        low, high = _interval(layer, self.low, self.high)
        if self.norm == "l1":
            centre = nn.functional.linear(self.x0, layer.weight, layer.bias)
            reach = self.radius * layer.weight.abs().amax(dim=1)
            low, high = torch.maximum(low, centre - reach), torch.minimum(high, centre + reach)
        return low, high

    def maximum(self, coefficients: torch.Tensor) -> torch.Tensor:
        """max λ·x over the ball, per image and row of ``coefficients`` (batch × rows × inputs)."""
        centre, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        best = (coefficients @ centre.unsqueeze(2) + coefficients.abs() @ half.unsqueeze(2)).squeeze(2)
        if self.norm == "l1":
            at_centre = (coefficients @ self.x0.unsqueeze(2)).squeeze(2)
            best = torch.minimum(best, at_centre + self.radius * coefficients.abs().amax(2))
        return best


def ball_bounds(
    model: nn.Module,
    images: torch.Tensor,
    ball: Ball,
    box: tuple[float, float] = (0.0, 1.0),
    method: str = "ia",
) -> LayerBounds:
    """Pre-activation bounds of every hidden layer over ``ball`` around each image, within
    ``box``, by interval arithmetic (``ia``) or the linear relaxation (``crown``).

    Args:
        model: the MLP.
        images: the ball centres, shape ``(batch, ...)`` (flattened per row).
        ball: the norm (``"linf"`` or ``"l1"``) and radius.
        box: the valid input range ``(low, high)`` every ball is clipped to.
        method: ``ia`` or ``crown`` (:data:`~prunemip.pruning.config.RS_BOUNDS`).

    Returns:
        One ``(l, u)`` per hidden layer, each of shape ``(batch, n_out)``, differentiable in the weights.

    Raises:
        ValueError: for an unknown method or norm.
    """
    if method not in RS_BOUNDS:
        raise ValueError(f"unknown RS bounds {method!r}; choose one of {', '.join(RS_BOUNDS)}")
    region = _Ball(images, ball, box)
    layers = linear_layers(model)
    return _hidden_bounds(layers, region.first_layer(layers[0]), region if method == "crown" else None)


def _hidden_bounds(
    layers: list[nn.Linear], first: tuple[torch.Tensor, torch.Tensor], crown_region: _Ball | None = None
) -> LayerBounds:
    """The first hidden layer's bounds, then interval arithmetic through the other hidden
    layers, each intersected with its linear relaxation over ``crown_region`` if given."""
    bounds = [first]
    kept, compact = _compact_layers(layers[:-1]) if crown_region is not None else ([], [])
    lines: list[tuple[torch.Tensor, ...]] = []  # each layer's ReLU lines on its kept neurons
    for k, layer in enumerate(layers[1:-1], start=1):
        low, high = bounds[-1]
        interval = _interval(layer, torch.relu(low), torch.relu(high))
        if crown_region is not None:
            lines.append(tuple(line[:, kept[k - 1]].unsqueeze(1) for line in _relu_lines(low, high)))
            relaxed = _linear_relaxation(compact[: k + 1], lines, crown_region)
            rows = kept[k]
            interval = (
                interval[0].index_copy(1, rows, torch.maximum(interval[0][:, rows], relaxed[0])),
                interval[1].index_copy(1, rows, torch.minimum(interval[1][:, rows], relaxed[1])),
            )
        bounds.append(interval)
    return bounds


def _compact_layers(
    hidden: list[nn.Linear],
) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    """The kept neurons of each hidden layer (a nonzero incoming weight or bias), and its
    weights and bias on them, with inputs restricted to the previous layer's kept neurons.
    The others (removed by neuron pruning, whose masks keep them at exact zeros) have ẑ = 0
    on every input: their interval bounds are exact and they add nothing further on."""
    kept = [
        torch.nonzero(layer.weight.detach().ne(0).any(dim=1) | layer.bias.detach().ne(0)).flatten()
        for layer in hidden
    ]
    compact = [
        (layer.weight[rows][:, kept[k - 1]] if k else layer.weight[rows], layer.bias[rows])
        for k, (layer, rows) in enumerate(zip(hidden, kept, strict=True))
    ]
    return kept, compact


def _relu_lines(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slopes and intercept of the ReLU's relaxation on [l, u]: upper a_u·z + c_u, lower a_l·z."""
    unstable = (low < 0) & (high > 0)
    gap = torch.where(unstable, high - low, torch.ones_like(high))
    upper_slope = torch.where(unstable, high / gap, (low >= 0).to(high.dtype))
    intercept = torch.where(unstable, -high * low / gap, torch.zeros_like(high))
    lower_slope = torch.where(unstable, (high >= -low).to(high.dtype), (low >= 0).to(high.dtype))
    return upper_slope, intercept, lower_slope


def _linear_relaxation(
    compact: list[tuple[torch.Tensor, torch.Tensor]], lines: list[tuple[torch.Tensor, ...]], region: _Ball
) -> tuple[torch.Tensor, torch.Tensor]:
    """CROWN bounds of the last ``compact`` layer's pre-activations, from the ReLU ``lines``
    of the earlier ones; every layer is restricted to its kept neurons, which is exact (the
    others are 0). Upper bounds of z and −z share one pass (rows [W; −W])."""
    weight, bias = compact[-1]
    batch, n_rows = len(region.x0), len(bias)
    coefficients = torch.cat([weight, -weight]).unsqueeze(0).expand(batch, -1, -1)
    constant = torch.cat([bias, -bias]).expand(batch, -1)
    for (weight, bias), (upper_slope, intercept, lower_slope) in zip(
        reversed(compact[:-1]), reversed(lines), strict=True
    ):
        positive, negative = coefficients.clamp(min=0), coefficients.clamp(max=0)
        constant = constant + (positive * intercept).sum(2)
        coefficients = positive * upper_slope + negative * lower_slope
        constant = constant + coefficients @ bias
        coefficients = coefficients @ weight
    best = region.maximum(coefficients) + constant
    return -best[:, n_rows:], best[:, :n_rows]


def rs_loss(
    model: nn.Module,
    images: torch.Tensor,
    eps: float,
    box: tuple[float, float] = (0.0, 1.0),
    norm: str = "linf",
    method: str = "ia",
) -> torch.Tensor:
    """Xiao et al.'s RS loss over the ``norm``-ball of radius ``eps``: −Σ_j tanh(1 + l_j u_j),
    averaged over the batch (``crown``: its first :data:`CROWN_IMAGES` images).

    Args:
        model: the MLP.
        images: the mini-batch, shape ``(batch, ...)``.
        eps: the ball's radius.
        box: the valid input range ``(low, high)``.
        norm: ``"linf"`` or ``"l1"``.
        method: how the bounds are computed, ``ia`` or ``crown``.

    Returns:
        The loss, a differentiable scalar.
    """
    if method == "crown":
        images = images[:CROWN_IMAGES]
    bounds = ball_bounds(model, images, (norm, eps), box, method)
    terms = [-torch.tanh(1.0 + low * high).sum(dim=1) for low, high in bounds]
    return torch.stack(terms).sum(dim=0).mean()


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Σ|w| over the weights of every linear layer (biases not counted).

    Args:
        model: the MLP.

    Returns:
        The penalty, a differentiable scalar.
    """
    return sum(layer.weight.abs().sum() for layer in linear_layers(model))  # type: ignore[return-value]


class Regularizer(Callback):
    """Adds ``l1``·L1 + ``rs_weight``·Σ_balls RS(ball) to every mini-batch loss."""

    def __init__(
        self,
        l1: float,
        rs_weight: float,
        rs_balls: Sequence[Ball],
        box: tuple[float, float] = (0.0, 1.0),
        rs_bounds: str = "ia",
    ) -> None:
        if rs_weight and not rs_balls:
            raise ValueError("the RS loss needs at least one input ball")
        self.l1, self.rs_weight, self.rs_balls, self.box = l1, rs_weight, tuple(rs_balls), box
        self.rs_bounds = rs_bounds

    def extra_loss(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
        """Implements :meth:`Callback.extra_loss`: the weighted L1 and RS terms (None when both are off)."""
        terms = []
        if self.l1:
            terms.append(self.l1 * l1_penalty(model))
        if self.rs_weight:
            terms += [
                self.rs_weight * rs_loss(model, images, radius, self.box, norm, self.rs_bounds)
                for norm, radius in self.rs_balls
            ]
        return sum(terms[1:], terms[0]) if terms else None
