"""Iterative magnitude pruning and the lottery-ticket controls (Frankle & Carbin, ICLR 2019).

Each round removes the fraction p (default 20 %) of the *remaining* prunable weights with
the smallest |w| over all prunable layers at once (open_lth ``sparse_global``; the output
layer is left alone unless asked), rewinds the survivors to θ_k — the initialisation
(k = 0) or the weights after k iterations of training (Frankle et al. 2020, *Linear mode
connectivity and the lottery ticket hypothesis*) — and retrains from step k with a fresh
optimizer. Round r keeps exactly round(ρ_r·N) weights with ρ_r = max((1 − p)^r, 1 − S)
(ties broken by position), so the last round lands on the target sparsity S; open_lth
instead removes ceil(p·remaining) with a strict threshold, which can take a few more on
ties. With a fixed number of rounds R the fraction becomes p = 1 − (1 − S)^{1/R}.

Every level is a step of the run directory named by its kept-weight count
(``level-<r>-<count>``). With a fixed p the levels do not depend on the target, so runs
towards different targets share one directory and all their common levels: after
``--sparsity 0.9``, a run to 0.95 trains only the levels beyond 0.9.

Controls (open_lth ``lottery/branch``): ``imp-reinit`` trains IMP's final mask from a
fresh random initialisation; ``imp-random`` trains a random mask with the same number
of weights per layer, from θ_k.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunemip.pruning.masks import Masks, select, top_mask
from prunemip.pruning.scores import magnitudes


def imp_densities(sparsity: float, fraction: float = 0.2, rounds: int | None = None) -> list[float]:
    """Density after each round: (1 − p)^r, the last one exactly 1 − ``sparsity``.

    Args:
        sparsity: the target sparsity S, in [0, 1).
        fraction: p, the share of the remaining weights removed per round.
        rounds: a fixed number of rounds R (then p = 1 − (1 − S)^{1/R}); ``None``: as many as p needs.

    Returns:
        The density of each round, decreasing; empty for ``sparsity`` 0.
    """
    target = 1.0 - sparsity
    if target >= 1.0:
        return []
    if rounds is not None:
        fraction = 1.0 - target ** (1.0 / rounds)
    else:
        rounds = math.ceil(math.log(target) / math.log(1.0 - fraction) - 1e-9)
    return [max((1.0 - fraction) ** r, target) for r in range(1, rounds)] + [target]


def imp_masks(model: nn.Module, masks: Masks, density: float) -> Masks:
    """Keep the ``round(density·N)`` largest |w| of the remaining prunable weights.

    Args:
        model: the trained model.
        masks: the masks in force (what they prune stays pruned).
        density: the fraction of the prunable weights to keep.

    Returns:
        The new masks (checked, not yet applied to ``model``).
    """
    pruned = select(magnitudes(model), masks, 1.0 - density, "global")
    pruned.check()
    return pruned


def random_masks_like(masks: Masks, seed: int) -> Masks:
    """Random masks with the same number of kept weights in every prunable layer.

    Args:
        masks: the masks whose per-layer counts are copied.
        seed: the seed of the random ranking.

    Returns:
        The new masks (checked).
    """
    generator = torch.Generator().manual_seed(seed)
    result = masks.copy()
    for index, (mask, prunable) in enumerate(zip(masks.weight, masks.prunable, strict=True)):
        if prunable:
            noise = torch.rand(mask.numel(), generator=generator).to(mask.device)
            result.weight[index] = top_mask(noise, int(mask.sum())).reshape(mask.shape)
    result.check()
    return result
