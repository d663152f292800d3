"""Structured (neuron) pruning: neuron-norm magnitude, its random control, proximal group lasso.

A hidden neuron j of layer l is the group {W_l[j, :], b_l[j]} (its incoming weights
and bias). Removing it masks that row, its bias *and* its outgoing column W_{l+1}[:, j]
(reference/pruning.md §1 pitfall 4: a row mask alone leaves the constant ReLU(b_j)), so
the exported network physically loses the neuron. Output neurons are never removed.

* ``neuron-magnitude`` scores neurons by ‖W_l[j, :]‖₂ (the L2 filter norm of Li et al.,
  ICLR 2017).
* ``neuron-random`` scores neurons uniformly at random (seeded): the control that tells
  whether a neuron score beats chance (random neuron pruning, Mittal et al., *Recovering
  from random pruning: on the plasticity of deep convolutional neural networks*, WACV 2018).
* ``group-lasso`` (Wen et al., *Learning structured sparsity in deep neural networks*,
  NeurIPS 2016) trains with the penalty λ·Σ_g ‖w_g‖₂ applied as a proximal step after every
  optimizer step, w_g ← w_g·max(0, 1 − ηλ/‖w_g‖₂) with η the current learning rate, which
  reaches exact zeros (plain gradient steps only approach them); neurons are then scored
  by ‖w_g‖₂. With Adam, η is its step size, a heuristic proximal step; the default
  λ = 0.3 suits Adam at lr ≈ 1e-3 (lower it for SGD's larger steps).

The target is a *weight* sparsity, as for the unstructured methods: the same fraction q of
neurons is removed from every hidden layer, the smallest q whose removal reaches the
target sparsity of the prunable layers.
"""

from __future__ import annotations

import torch
from torch import nn

from prunemip.errors import PrunemipError
from prunemip.pruning.masks import Masks, linear_layers, top_mask
from prunemip.pruning.training import Callback


def neuron_norms(model: nn.Module, with_bias: bool = False) -> list[torch.Tensor]:
    """‖W_l[j, :]‖₂ (or ‖(W_l[j, :], b_l[j])‖₂) for every hidden layer l.

    Args:
        model: the MLP.
        with_bias: include each neuron's bias in its group.

    Returns:
        One tensor per hidden layer, shape ``(n_out,)``.
    """
    norms = []
    for layer in linear_layers(model)[:-1]:
        squares = layer.weight.detach().pow(2).sum(dim=1)
        if with_bias and layer.bias is not None:
            squares = squares + layer.bias.detach().pow(2)
        norms.append(squares.sqrt())
    return norms


def random_neuron_scores(model: nn.Module, seed: int) -> list[torch.Tensor]:
    """Independent U(0, 1) scores for the neurons of every hidden layer, from ``seed``.

    Args:
        model: the MLP.
        seed: the seed of the draw.

    Returns:
        One float64 tensor per hidden layer, shape ``(n_out,)``.
    """
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.rand(layer.out_features, generator=generator, dtype=torch.float64).to(layer.weight.device)
        for layer in linear_layers(model)[:-1]
    ]


def remove_neurons(masks: Masks, alive: list[torch.Tensor]) -> Masks:
    """Masks with each dead hidden neuron's row, bias and outgoing column masked.

    Args:
        masks: the masks in force.
        alive: one boolean tensor per hidden layer, ``True`` for the neurons kept.

    Returns:
        A copy of ``masks`` without the dead neurons.
    """
    result = masks.copy()
    for index, keep in enumerate(alive):
        result.weight[index] = result.weight[index] & keep[:, None]
        result.bias[index] = result.bias[index] & keep
        result.weight[index + 1] = result.weight[index + 1] & keep[None, :]
    return result


def _alive(scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Keep the n_l − round(q·n_l) best neurons (at least one) of each hidden layer."""
    return [top_mask(s.double(), max(1, s.numel() - int(fraction * s.numel() + 0.5))) for s in scores]


def neuron_masks(masks: Masks, scores: list[torch.Tensor], sparsity: float) -> Masks:
    """Remove the lowest-scoring neurons, the same fraction per hidden layer, until the
    prunable weights reach ``sparsity`` (the smallest such fraction, by bisection).

    Args:
        masks: the masks in force.
        scores: one tensor per hidden layer, shape ``(n_out,)``; higher means keep.
        sparsity: the target weight sparsity of the prunable layers.

    Returns:
        The new masks (checked).

    Raises:
        PrunemipError: when even one neuron per layer cannot reach ``sparsity``.
    """
    if remove_neurons(masks, _alive(scores, 1.0)).sparsity < sparsity:
        raise PrunemipError(
            f"neuron pruning cannot reach sparsity {sparsity} for this architecture even with one "
            "neuron per layer; lower the sparsity or use an unstructured method"
        )
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        if remove_neurons(masks, _alive(scores, middle)).sparsity >= sparsity:
            high = middle
        else:
            low = middle
    result = remove_neurons(masks, _alive(scores, high))
    result.check()
    return result


class GroupLassoProximal(Callback):
    """Proximal step of λ·Σ_g ‖w_g‖₂ over the hidden neurons' groups after every optimizer step."""

    def __init__(self, strength: float) -> None:
        self.strength = strength

    @torch.no_grad()
    def after_step(
        self, step: int, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer, lr: float
    ) -> None:
        """Implements :meth:`Callback.after_step`: the proximal step
        w_g ← w_g·max(0, 1 − ηλ/‖w_g‖₂) on every hidden neuron's group, η = ``lr``.
        """
        for layer, norm in zip(linear_layers(model), neuron_norms(model, with_bias=True), strict=False):
            shrink = (1.0 - lr * self.strength / norm.clamp_min(1e-30)).clamp_min(0.0)
            layer.weight.mul_(shrink[:, None])
            layer.bias.mul_(shrink)
