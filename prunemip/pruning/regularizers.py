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

The bounds are differentiable interval arithmetic in centre/radius form,
c' = W c + b, r' = |W| r (the same box as W⁺u + W⁻l + b and W⁺l + W⁻u + b), started on
the ball's bounding box. Over an L1 ball the first layer is also bounded by Hölder's
inequality, |w_j·(x − x0)| ≤ δ·‖w_j‖∞, which is what makes the bounds useful there: the
bounding box of a δ = 5 ball is the whole pixel box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunemip.pruning.masks import linear_layers
from prunemip.training import Callback

LayerBounds = list[tuple[torch.Tensor, torch.Tensor]]
#: An RS ball: its norm (``"linf"`` or ``"l1"``) and radius.
Ball = tuple[str, float]


def _interval(layer: nn.Linear, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centre = nn.functional.linear((high + low) / 2, layer.weight, layer.bias)
    radius = nn.functional.linear((high - low) / 2, layer.weight.abs())
    return centre - radius, centre + radius


def _through_hidden_layers(layers: list[nn.Linear], first: tuple[torch.Tensor, torch.Tensor]) -> LayerBounds:
    """The first hidden layer's bounds, then interval arithmetic through the other hidden layers."""
    bounds = [first]
    for layer in layers[1:-1]:
        low, high = bounds[-1]
        bounds.append(_interval(layer, torch.relu(low), torch.relu(high)))
    return bounds


def interval_bounds(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor) -> LayerBounds:
    """Pre-activation bounds ``(l, u)`` of every hidden layer for inputs in ``[lower, upper]``."""
    layers = linear_layers(model)
    return _through_hidden_layers(layers, _interval(layers[0], lower.flatten(1), upper.flatten(1)))


def ball_bounds(
    model: nn.Module, images: torch.Tensor, ball: Ball, box: tuple[float, float] = (0.0, 1.0)
) -> LayerBounds:
    """Pre-activation bounds of every hidden layer over ``ball`` around each image, within ``box``."""
    norm, radius = ball
    layers = linear_layers(model)
    x0 = images.flatten(1)
    low, high = _interval(layers[0], (x0 - radius).clamp(*box), (x0 + radius).clamp(*box))
    if norm == "l1":
        first = layers[0]
        centre = nn.functional.linear(x0, first.weight, first.bias)
        reach = radius * first.weight.abs().amax(dim=1)
        low, high = torch.maximum(low, centre - reach), torch.minimum(high, centre + reach)
    elif norm != "linf":
        raise ValueError(f"unknown RS ball norm {norm!r}; choose linf or l1")
    return _through_hidden_layers(layers, (low, high))


def rs_loss(
    model: nn.Module,
    images: torch.Tensor,
    eps: float,
    box: tuple[float, float] = (0.0, 1.0),
    norm: str = "linf",
) -> torch.Tensor:
    """Xiao et al.'s RS loss over the ``norm``-ball of radius ``eps``: −Σ_j tanh(1 + l_j u_j),
    averaged over the batch."""
    bounds = ball_bounds(model, images, (norm, eps), box)
    terms = [-torch.tanh(1.0 + low * high).sum(dim=1) for low, high in bounds]
    return torch.stack(terms).sum(dim=0).mean()


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(layer.weight.abs().sum() for layer in linear_layers(model))  # type: ignore[return-value]


class Regularizer(Callback):
    """Adds ``l1``·L1 + ``rs_weight``·Σ_balls RS(ball) to every mini-batch loss."""

    def __init__(
        self, l1: float, rs_weight: float, rs_balls: Sequence[Ball], box: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        if rs_weight and not rs_balls:
            raise ValueError("the RS loss needs at least one input ball")
        self.l1, self.rs_weight, self.rs_balls, self.box = l1, rs_weight, tuple(rs_balls), box

    def extra_loss(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
        terms = []
        if self.l1:
            terms.append(self.l1 * l1_penalty(model))
        if self.rs_weight:
            terms += [
                self.rs_weight * rs_loss(model, images, radius, self.box, norm)
                for norm, radius in self.rs_balls
            ]
        return sum(terms[1:], terms[0]) if terms else None
