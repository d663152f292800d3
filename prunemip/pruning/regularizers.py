"""Regularisers that make a network cheaper to encode as a MIP: L1 and ReLU stability.

* L1 — λ·Σ_l ‖W_l‖₁ over every weight (biases excluded): pushes weights to zero.
* RS — the ReLU-stability loss of Xiao et al., *Training for faster adversarial
  robustness verification via inducing ReLU stability* (ICLR 2019):
  RS = −Σ_j tanh(1 + l_j·u_j) summed over hidden neurons, averaged over the batch, where
  [l_j, u_j] are interval bounds of neuron j's pre-activation over the ε-ball around
  each training input (intersected with the data's box). It is smallest when l and u
  share a sign, i.e. the neuron is stable, so a big-M encoding needs no binary for it.

The interval bounds are differentiable interval arithmetic in centre/radius form,
c' = W c + b, r' = |W| r (the same box as W⁺u + W⁻l + b and W⁺l + W⁻u + b).
"""

from __future__ import annotations

import torch
from torch import nn

from prunemip.pruning.masks import linear_layers
from prunemip.training import Callback


def interval_bounds(
    model: nn.Module, lower: torch.Tensor, upper: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pre-activation bounds ``(l, u)`` of every hidden layer for inputs in ``[lower, upper]``."""
    layers = linear_layers(model)
    low, high = lower.flatten(1), upper.flatten(1)
    bounds = []
    for layer in layers[:-1]:
        centre = nn.functional.linear((high + low) / 2, layer.weight, layer.bias)
        radius = nn.functional.linear((high - low) / 2, layer.weight.abs())
        pre_low, pre_high = centre - radius, centre + radius
        bounds.append((pre_low, pre_high))
        low, high = torch.relu(pre_low), torch.relu(pre_high)
    return bounds


def rs_loss(
    model: nn.Module, images: torch.Tensor, eps: float, box: tuple[float, float] = (0.0, 1.0)
) -> torch.Tensor:
    """Xiao et al.'s RS loss, −Σ_j tanh(1 + l_j u_j), averaged over the batch."""
    lower = (images - eps).clamp(*box)
    upper = (images + eps).clamp(*box)
    terms = [-torch.tanh(1.0 + low * high).sum(dim=1) for low, high in interval_bounds(model, lower, upper)]
    return torch.stack(terms).sum(dim=0).mean()


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(layer.weight.abs().sum() for layer in linear_layers(model))  # type: ignore[return-value]


class Regularizer(Callback):
    """Adds ``l1``·L1 + ``rs_weight``·RS(ε = ``rs_eps``) to every mini-batch loss."""

    def __init__(
        self, l1: float, rs_weight: float, rs_eps: float, box: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        self.l1, self.rs_weight, self.rs_eps, self.box = l1, rs_weight, rs_eps, box

    def extra_loss(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
        total = None
        if self.l1:
            total = self.l1 * l1_penalty(model)
        if self.rs_weight:
            rs = self.rs_weight * rs_loss(model, images, self.rs_eps, self.box)
            total = rs if total is None else total + rs
        return total
