"""Dynamic sparse training: SET and RigL, as in google-research/rigl.

The network trains sparse from the start (random masks with exact per-layer counts from
the allocation, ERK by default). Every ``interval`` steps from step 0 to ``end_step``
(rigl: update at t iff t ≤ end and t ≥ last_update + interval, last_update starting at
−interval), each prunable layer swaps connections:

1. drop fraction f(t) = α/2·(1 + cos(π·min(t, T_end)/T_end)) (cosine on the raw step);
   n_prune = ⌊n_active·f(t)⌋;
2. drop — keep the n_active − n_prune largest |w| among the active entries;
3. grow — activate the n_prune highest grow scores among all entries not kept (so a
   just-dropped connection can come straight back): |∂L/∂(W ⊙ M)|, the dense gradient
   of the mini-batch loss (RigL, Evci et al., ICML 2020), or U(0, 1) (SET);
4. new connections start at zero and so do their optimizer slots; a connection dropped
   and regrown in the same update keeps its value (rigl's ``reinit_when_same=False``).

Per-layer counts never change. RigL makes no optimizer step on an update step; SET
steps first and updates the mask after the step. Ties in either ranking are broken by
position.

**SET variant.** This is rigl's SET (``SparseSETOptimizer``): one magnitude drop of the
smallest |w| per layer, random growth, zero-initialised new weights, and the same
cosine-decayed drop fraction and step interval as RigL. Mocanu et al. (2018) instead
update once per epoch, drop the fraction ζ of the smallest positive *and* of the largest
negative weights, and initialise new weights randomly; that variant is not implemented.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunemip.pruning.masks import Masks, linear_layers, top_mask
from prunemip.pruning.training import Callback

DST_MODES: tuple[str, ...] = ("set", "rigl")


def cosine_drop_fraction(step: int, alpha: float, end_step: int) -> float:
    """α/2·(1 + cos(π·min(t, T_end)/T_end)).

    Args:
        step: the global training step t.
        alpha: the initial drop fraction α.
        end_step: the last update step T_end.

    Returns:
        The fraction of each layer's active connections to drop at ``step``.
    """
    return alpha / 2 * (1 + math.cos(math.pi * min(step, end_step) / max(end_step, 1)))


def drop_and_grow(
    weight: torch.Tensor, mask: torch.Tensor, grow_scores: torch.Tensor, fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One RigL/SET update of one layer: returns ``(kept, grown)``, disjoint boolean masks.

    The new mask is ``kept | grown``; it has exactly as many entries as ``mask``.

    Args:
        weight: the layer's weight, shape ``(n_out, n_in)``.
        mask: its current boolean mask, same shape.
        grow_scores: the grow score of every entry (RigL |gradient|, SET noise), same shape.
        fraction: the drop fraction f(t).

    Returns:
        ``(kept, grown)``, boolean masks shaped like ``mask``.
    """
    n_active = int(mask.sum())
    n_prune = math.floor(n_active * fraction)
    drop_scores = torch.where(mask, weight.detach().abs(), -math.inf).flatten()
    kept = top_mask(drop_scores, n_active - n_prune)
    candidates = torch.where(kept, -math.inf, grow_scores.detach().flatten().double())
    grown = top_mask(candidates, n_prune)
    return kept.reshape(mask.shape), grown.reshape(mask.shape)


class DynamicSparsity(Callback):
    """SET or RigL mask updates during training (see the module docstring)."""

    def __init__(self, mode: str, drop_fraction: float, interval: int, end_step: int, seed: int = 0) -> None:
        if mode not in DST_MODES:
            raise ValueError(f"unknown DST mode {mode!r}")
        self.mode, self.alpha, self.interval, self.end_step = mode, drop_fraction, interval, end_step
        self.last_update = -interval
        self.generator = torch.Generator().manual_seed(seed)
        self.updates = 0

    def due(self, step: int) -> bool:
        """Whether ``step`` is an update step: t ≤ T_end and t ≥ last update + interval.

        Args:
            step: the global training step.

        Returns:
            ``True`` when the masks are to be updated at ``step``.
        """
        return step <= self.end_step and step >= self.last_update + self.interval

    def before_step(
        self, step: int, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer
    ) -> bool:
        """Implements :meth:`Callback.before_step`: RigL updates the masks from the dense gradients
        at a due step and skips that optimizer step (returns False).
        """
        if self.mode != "rigl" or not self.due(step):
            return True
        self.update(step, model, masks, optimizer, [layer.weight.grad for layer in linear_layers(model)])
        return False

    def after_step(
        self, step: int, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer, lr: float
    ) -> None:
        """Implements :meth:`Callback.after_step`: SET updates the masks with random growth at a due step."""
        if self.mode == "set" and self.due(step):
            scores = [torch.rand(m.shape, generator=self.generator).to(m.device) for m in masks.weight]
            self.update(step, model, masks, optimizer, scores)

    def update(
        self,
        step: int,
        model: nn.Module,
        masks: Masks,
        optimizer: torch.optim.Optimizer | None,
        grow_scores: list[torch.Tensor | None],
    ) -> None:
        """Drop and grow in every prunable layer (``grow_scores``: RigL |gradient| or SET noise).

        Args:
            step: the global training step t (sets the drop fraction).
            model: the model being trained; changed entries are zeroed in place.
            masks: the masks in force, updated in place.
            optimizer: its optimizer, whose state is zeroed at changed entries (``None``: none).
            grow_scores: one tensor per linear layer shaped like its weight (``None``: layer skipped).
        """
        fraction = cosine_drop_fraction(step, self.alpha, self.end_step)
        for index, layer in enumerate(linear_layers(model)):
            scores = grow_scores[index]
            if not masks.prunable[index] or scores is None:
                continue
            kept, grown = drop_and_grow(layer.weight, masks.weight[index], scores.abs(), fraction)
            masks.set_weight(index, kept | grown, model, optimizer)
        self.last_update = step
        self.updates += 1
