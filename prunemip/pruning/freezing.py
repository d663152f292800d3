"""Freezing at initialisation: weights kept at their random initial values, never trained.

Pruning and freezing are the two forms of *dimensionality-reduced training* (Wimmer,
Mehnert & Condurache, "Dimensionality reduced training by pruning and freezing parts of
a deep neural network: a survey", Artificial Intelligence Review, 2023): pruning sets a
weight to zero, freezing keeps it at its initial value θ₀ and stops training it. Both
cut the trained parameters and the weight gradients, but only pruning removes a weight
from the function: a frozen weight is an ordinary nonzero coefficient of the exported
network and of its MIP.

The frozen entries are chosen once, after the pruning mask and before training:

* ``freeze_layers`` — whole linear layers (numbered from 1), weights and bias;
* ``random`` — a uniformly random subset of the kept weights (U(0, 1) scores from the
  run's seed, as random pruning; with a random pruning mask the two draw one
  permutation, so pruned and frozen sets are a uniformly random disjoint pair);
* ``snip`` — FreezeNet (Wimmer, Mehnert & Condurache, *FreezeNet: full performance by
  reduced storage costs*, ACCV 2020): the SNIP saliency |g ⊙ w| of one stratified
  mini-batch, computed on the pruned network; the weights of *smallest* saliency — the
  ones SNIP would zero — are frozen at θ₀ instead, the rest are trained.

``freeze_fraction`` F counts frozen weights in the prunable layers (the base of the
sparsity S): F·N of them are frozen in total, the whole frozen layers' kept weights
included, so (1 − S − F)·N weights of those layers train. The method picks the rest by
one global ranking over kept weights outside frozen layers (ties by position). Biases
train unless their layer is frozen. Enforcement is in :mod:`prunemip.pruning.masks` and
:func:`prunemip.pruning.training.train`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunemip.data import Dataset
from prunemip.errors import PrunemipError
from prunemip.pruning.config import PruneConfig
from prunemip.pruning.masks import Masks, top_mask
from prunemip.pruning.scores import SCORES, ScoreInputs, score_batch


def freeze_masks(prune: PruneConfig, model: nn.Module, masks: Masks, data: Dataset, seed: int) -> Masks:
    """``masks`` with ``prune``'s frozen entries set (``model`` at initialisation, pruned by ``masks``).

    Args:
        prune: the method's ``freeze``, ``freeze_fraction`` and ``freeze_layers``.
        model: the model at initialisation, pruned by ``masks``.
        masks: the masks in force.
        data: where a data-driven freeze score draws its scoring batch.
        seed: the seed of the scoring batch and of random scores.

    Returns:
        A copy of ``masks`` with the frozen entries set.

    Raises:
        PrunemipError: when the frozen layers alone hold more than ``freeze_fraction`` of the weights.
    """
    result = masks.copy()
    for layer in prune.freeze_layers:
        result.frozen[layer - 1] = masks.weight[layer - 1].clone()
        result.frozen_bias[layer - 1] = masks.bias[layer - 1].clone()
    if prune.freeze is None:
        return result
    layers = [i for i, prunable in enumerate(masks.prunable) if prunable]
    target = round(prune.freeze_fraction * masks.size())
    already = sum(int(result.frozen[i].sum()) for i in layers)
    if already > target:
        raise PrunemipError(
            f"the frozen layers hold {already} of the {masks.size()} prunable weights, more than "
            f"--freeze-fraction {prune.freeze_fraction:g}; raise the fraction or freeze fewer layers"
        )
    available = [masks.weight[i] & ~result.frozen[i] for i in layers]
    # Pruned + frozen ≤ 1 holds up to the rounding of the per-layer kept counts.
    count = min(target - already, sum(int(a.sum()) for a in available))
    images, labels = score_batch(data, prune.score_per_class, seed, masks.weight[0].device)
    scores = SCORES[prune.freeze](model, masks, ScoreInputs(images, labels, seed))  # higher = trained
    flat = torch.cat(
        [
            torch.where(a.flatten(), -scores[i].detach().flatten().double(), -math.inf)
            for a, i in zip(available, layers, strict=True)
        ]
    )
    chosen = torch.split(top_mask(flat, count), [a.numel() for a in available])
    for i, pick in zip(layers, chosen, strict=True):
        result.frozen[i] = result.frozen[i] | pick.reshape(masks.weight[i].shape)
    result.check()
    return result
