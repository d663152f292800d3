"""Gradual magnitude pruning (Zhu & Gupta, *To prune, or not to prune*, 2018).

Sparsity rises from s_i = 0 to the target s_f along the cubic schedule

    s_t = s_f + (s_i − s_f)·(1 − (t − t₀)/(t_end − t₀))³,   t₀ ≤ t ≤ t_end,

re-pruning by weight magnitude every ``interval`` steps (and once more at t_end), then
training on at the final sparsity. Pruned weights never come back. Zhu & Gupta prune
every layer to s_t (``allocation="layer"``); the default here ranks all prunable weights
globally.
"""

from __future__ import annotations

import torch
from torch import nn

from prunemip.pruning.masks import Masks, select
from prunemip.pruning.scores import magnitudes
from prunemip.pruning.training import Callback


def cubic_sparsity(step: int, final: float, begin: int, end: int) -> float:
    """Zhu & Gupta's s_t with s_i = 0 (0 before ``begin``, ``final`` from ``end`` on).

    Args:
        step: the global training step t.
        final: the target sparsity s_f.
        begin: the first pruning step t₀.
        end: the last pruning step t_end.

    Returns:
        The sparsity s_t.
    """
    if step < begin:
        return 0.0
    progress = min(1.0, (step - begin) / max(end - begin, 1))
    return final * (1.0 - (1.0 - progress) ** 3)


class GradualMagnitude(Callback):
    """Prune by magnitude along the cubic schedule, after optimizer steps."""

    def __init__(self, sparsity: float, allocation: str, begin: int, end: int, interval: int) -> None:
        self.sparsity, self.allocation = sparsity, allocation
        self.begin, self.end, self.interval = begin, end, interval
        self.current = 0.0

    def after_step(
        self, step: int, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer, lr: float
    ) -> None:
        """Implements :meth:`Callback.after_step`: at a pruning step, prune by magnitude to the
        schedule's sparsity when it has risen.
        """
        if step < self.begin or ((step - self.begin) % self.interval and step < self.end):
            return
        target = cubic_sparsity(step, self.sparsity, self.begin, self.end)
        if target <= self.current:
            return
        pruned = select(magnitudes(model), masks, target, self.allocation)
        for index, prunable in enumerate(masks.prunable):
            if prunable:
                masks.set_weight(index, pruned.weight[index], model, optimizer)
        self.current = target
