"""Masks: the single source of truth for which weights and biases exist, and which train.

A :class:`Masks` holds one boolean mask per ``nn.Linear`` weight and bias of an MLP, in
layer order, and beside it one *frozen* mask per weight and bias: an entry is zero
(pruned, mask 0), frozen (kept at its initial value, never trained) or trainable, and
frozen ⊆ kept. Training keeps the raw parameters *exactly* zero where a mask is 0
(reference/pruning.md §1, pitfall 3): gradients are masked at pruned and frozen entries
before every optimizer step (so momentum and Adam's moments never build up there),
weight decay is applied by the training loop to trainable entries only, parameters are
multiplied by the mask after the step, and whenever a mask changes the optimizer's
per-entry state is zeroed at every changed position. Export then reads ``W ⊙ M`` from
parameters that already hold those zeros; frozen entries are ordinary weights there.

Only *prunable* layers are touched by the methods: the hidden layers, and the output
layer only when asked. Every method must leave each prunable layer at least one weight
and the network at least one input→output path (:meth:`Masks.check`).

New masks come from scores through :func:`select` and :func:`top_mask`, which rank with
the torch-free :mod:`prunemip.pruning.allocation` (the one definition of "keep the
highest scores", shared with the magnitude pruning of an exported network).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from prunemip.errors import PrunemipError
from prunemip.pruning.allocation import keep_highest, top_k


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``model`` in forward order.

    Args:
        model: the MLP.

    Returns:
        Its linear layers.
    """
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


@dataclass
class Masks:
    """Boolean weight and bias masks of an MLP's linear layers (``True`` = kept).

    ``frozen`` and ``frozen_bias`` (``True`` = kept at its initial value) default to
    nothing frozen. The lists hold one entry per linear layer, in forward order; their
    shapes must chain like an MLP's (weight ``(n_out, n_in)``, bias ``(n_out,)``, frozen
    masks shaped like what they freeze), else :class:`~prunemip.errors.PrunemipError`.
    """

    weight: list[torch.Tensor]
    bias: list[torch.Tensor]
    prunable: tuple[bool, ...]
    frozen: list[torch.Tensor] = field(default_factory=list)
    frozen_bias: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frozen = self.frozen or [torch.zeros_like(m) for m in self.weight]
        self.frozen_bias = self.frozen_bias or [torch.zeros_like(m) for m in self.bias]
        lists = (self.weight, self.bias, self.prunable, self.frozen, self.frozen_bias)
        if len({len(items) for items in lists}) != 1:
            raise PrunemipError(
                "masks need one weight, bias, prunable flag, frozen and frozen-bias mask per layer; got "
                + ", ".join(str(len(items)) for items in lists)
            )
        for index, (weight, bias, frozen, frozen_bias) in enumerate(
            zip(self.weight, self.bias, self.frozen, self.frozen_bias, strict=True)
        ):
            fits = weight.dim() == 2 and tuple(bias.shape) == (weight.shape[0],)
            fits &= frozen.shape == weight.shape and frozen_bias.shape == bias.shape
            fits &= index == 0 or weight.shape[1] == self.weight[index - 1].shape[0]
            if not fits:
                raise PrunemipError(
                    f"masks of layer {index + 1} do not fit an MLP: weight {tuple(weight.shape)}, bias "
                    f"{tuple(bias.shape)}, frozen {tuple(frozen.shape)} and {tuple(frozen_bias.shape)}"
                )

    @classmethod
    def dense(cls, model: nn.Module, prune_output: bool = False) -> Masks:
        """All-ones masks for ``model``.

        Args:
            model: the MLP (its ``nn.Linear`` layers in forward order).
            prune_output: make the output layer prunable too.

        Returns:
            Masks keeping every weight and bias, nothing frozen.

        Raises:
            PrunemipError: if ``model`` has no hidden layer and ``prune_output`` is off.
        """
        layers = linear_layers(model)
        return cls(
            [torch.ones_like(layer.weight, dtype=torch.bool) for layer in layers],
            [
                torch.ones(layer.out_features, dtype=torch.bool, device=layer.weight.device)
                for layer in layers
            ],
            _prunable(len(layers), prune_output),
        )

    @classmethod
    def from_nonzeros(cls, model: nn.Module, prune_output: bool = False) -> Masks:
        """Masks of the nonzero weights: an already-sparse model keeps its zeros pruned.

        Args:
            model: the MLP, possibly with exact zeros among its weights.
            prune_output: make the output layer prunable too.

        Returns:
            Masks keeping the nonzero weights and every bias, nothing frozen.
        """
        masks = cls.dense(model, prune_output)
        masks.weight = [layer.weight.detach() != 0 for layer in linear_layers(model)]
        return masks

    # ----------------------------------------------------------------- enforcement
    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero every masked weight and bias of ``model`` in place.

        Args:
            model: the MLP the masks were made for.

        Raises:
            PrunemipError: if the model's weight shapes differ from the masks'.
        """
        for parameter, mask in self.pairs(model):
            parameter.masked_fill_(~mask, 0.0)

    @torch.no_grad()
    def mask_gradients(self, model: nn.Module) -> None:
        """Zero the gradients at pruned and frozen entries (after ``backward``, before the step).

        Args:
            model: the MLP the masks were made for (parameters without a gradient are skipped).
        """
        for parameter, trainable in self.trainable_pairs(model):
            if parameter.grad is not None:
                parameter.grad.masked_fill_(~trainable, 0.0)

    def pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every weight and bias of ``model`` with its mask.

        Args:
            model: the MLP the masks were made for.

        Returns:
            ``(parameter, mask)`` pairs, layer by layer, weight before bias.
        """
        for layer, weight, bias in zip(self._layers(model), self.weight, self.bias, strict=True):
            yield layer.weight, weight
            if layer.bias is not None:
                yield layer.bias, bias

    def trainable_pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every weight and bias of ``model`` with the mask of its trainable entries.

        Args:
            model: the MLP the masks were made for.

        Returns:
            ``(parameter, kept and not frozen)`` pairs, layer by layer, weight before bias.
        """
        layers = zip(self._layers(model), self.weight, self.bias, self.frozen, self.frozen_bias, strict=True)
        for layer, weight, bias, frozen, frozen_bias in layers:
            yield layer.weight, weight & ~frozen
            if layer.bias is not None:
                yield layer.bias, bias & ~frozen_bias

    @torch.no_grad()
    def set_weight(
        self, index: int, mask: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer | None
    ) -> None:
        """Replace layer ``index``'s weight mask mid-training.

        Every entry whose mask changes is set to zero (dropped weights vanish, grown ones
        start at zero) and so is the optimizer's per-entry state there (momentum, Adam's
        moments), so nothing stale moves the new pattern (rigl: slots reset at new
        connections). An entry dropped and regrown at once keeps its value and state.

        Args:
            index: the linear layer, from 0.
            mask: the new weight mask, shaped like the old one.
            model: the MLP being trained.
            optimizer: its optimizer (``None``: no state to reset).

        Raises:
            PrunemipError: if ``mask``'s shape differs from the layer's.
        """
        layer = self._layers(model)[index]
        if mask.shape != self.weight[index].shape:
            raise PrunemipError(
                f"a mask of shape {tuple(mask.shape)} cannot replace layer {index + 1}'s "
                f"{tuple(self.weight[index].shape)}"
            )
        changed = mask != self.weight[index]
        layer.weight.masked_fill_(changed, 0.0)
        if optimizer is not None:
            zero_optimizer_state(optimizer, layer.weight, changed)
        self.weight[index] = mask.clone()

    def _layers(self, model: nn.Module) -> list[nn.Linear]:
        """``model``'s linear layers, checked against the masks' shapes."""
        layers = linear_layers(model)
        shapes = [tuple(layer.weight.shape) for layer in layers]
        if shapes != [tuple(mask.shape) for mask in self.weight]:
            raise PrunemipError(
                f"the masks fit weights of shapes {[tuple(m.shape) for m in self.weight]}, "
                f"but the model's are {shapes}"
            )
        return layers

    # ----------------------------------------------------------------- accounting
    def nnz(self, prunable_only: bool = True) -> int:
        """Kept weights (biases not counted), of the prunable layers only unless ``prunable_only`` is off.

        Args:
            prunable_only: count the prunable layers only.

        Returns:
            The number of kept weights.
        """
        return sum(
            int(m.sum()) for m, p in zip(self.weight, self.prunable, strict=True) if p or not prunable_only
        )

    def size(self, prunable_only: bool = True) -> int:
        """All weights (biases not counted), of the prunable layers only unless ``prunable_only`` is off.

        Args:
            prunable_only: count the prunable layers only.

        Returns:
            The number of weights.
        """
        return sum(
            m.numel() for m, p in zip(self.weight, self.prunable, strict=True) if p or not prunable_only
        )

    @property
    def sparsity(self) -> float:
        """Fraction of prunable weights that are masked."""
        return 1.0 - self.nnz() / self.size()

    def parameter_counts(self) -> list[dict[str, int]]:
        """Per layer: ``trainable``, ``frozen`` and ``zero`` parameters (weights and biases),
        and ``weights_untrained``, the weights that are frozen or zero."""
        counts = []
        for weight, bias, frozen, frozen_bias in zip(
            self.weight, self.bias, self.frozen, self.frozen_bias, strict=True
        ):
            n_frozen = int(frozen.sum()) + int(frozen_bias.sum())
            n_zero = int((~weight).sum()) + int((~bias).sum())
            counts.append(
                {
                    "trainable": weight.numel() + bias.numel() - n_frozen - n_zero,
                    "frozen": n_frozen,
                    "zero": n_zero,
                    "weights_untrained": int((~weight | frozen).sum()),
                }
            )
        return counts

    def path_count(self) -> float:
        """Number of input→output paths through kept weights (float64: no overflow for MLPs)."""
        paths = torch.ones(self.weight[0].shape[1], dtype=torch.float64)
        for mask in self.weight:
            paths = mask.cpu().double() @ paths
        return float(paths.sum())

    def check(self) -> None:
        """Refuse layer collapse and entries both pruned and frozen.

        Raises:
            PrunemipError: if an entry is frozen but pruned, a prunable layer kept no weight,
                or no input→output path survives.
        """
        for frozen, mask in zip([*self.frozen, *self.frozen_bias], [*self.weight, *self.bias], strict=True):
            if bool((frozen & ~mask).any()):
                raise PrunemipError("an entry is both pruned and frozen; freeze only kept weights")
        for index, (mask, prunable) in enumerate(zip(self.weight, self.prunable, strict=True)):
            if prunable and not bool(mask.any()):
                raise PrunemipError(
                    f"layer {index + 1} lost all its weights (layer collapse); lower the sparsity "
                    "or use a layer-wise allocation"
                )
        if self.path_count() == 0:
            raise PrunemipError(
                "no input→output path survives (layer collapse); lower the sparsity, or use synflow "
                "or a layer-wise/ERK allocation"
            )

    # ----------------------------------------------------------------- copies and files
    def copy(self) -> Masks:
        """An independent copy (every mask cloned)."""

        def clone(masks: list[torch.Tensor]) -> list[torch.Tensor]:
            return [m.clone() for m in masks]

        return Masks(
            clone(self.weight), clone(self.bias), self.prunable, clone(self.frozen), clone(self.frozen_bias)
        )

    def move_to(self, device: torch.device) -> None:
        """Move the masks to ``device`` in place (callbacks keep updating this object).

        Args:
            device: the model's device.
        """
        self.weight = [m.to(device) for m in self.weight]
        self.bias = [m.to(device) for m in self.bias]
        self.frozen = [m.to(device) for m in self.frozen]
        self.frozen_bias = [m.to(device) for m in self.frozen_bias]

    def state(self) -> dict[str, Any]:
        """Plain tensors and lists (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "weight": [m.cpu() for m in self.weight],
            "bias": [m.cpu() for m in self.bias],
            "prunable": list(self.prunable),
            "frozen": [m.cpu() for m in self.frozen],
            "frozen_bias": [m.cpu() for m in self.frozen_bias],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Masks:
        """The masks of :meth:`state` (checkpoints written before freezing existed: nothing frozen).

        Args:
            state: a dict written by :meth:`state`.

        Returns:
            The masks, on the CPU.

        Raises:
            PrunemipError: when the masks do not fit an MLP.
        """
        return cls(
            list(state["weight"]),
            list(state["bias"]),
            tuple(bool(p) for p in state["prunable"]),
            list(state.get("frozen", [])),
            list(state.get("frozen_bias", [])),
        )


def _prunable(n_layers: int, prune_output: bool) -> tuple[bool, ...]:
    if n_layers < 2 and not prune_output:
        raise PrunemipError("the model has no hidden layer to prune; add one or allow pruning the output")
    return tuple(index < n_layers - 1 or prune_output for index in range(n_layers))


@torch.no_grad()
def zero_optimizer_state(
    optimizer: torch.optim.Optimizer, parameter: torch.Tensor, where: torch.Tensor
) -> None:
    """Zero every per-entry buffer the optimizer keeps for ``parameter`` at ``where``.

    Args:
        optimizer: the optimizer (momentum, Adam's moments).
        parameter: one of its parameters.
        where: a boolean mask shaped like ``parameter``.
    """
    for value in optimizer.state.get(parameter, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
            value.masked_fill_(where, 0.0)


def top_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest ``scores`` (ranked by :func:`prunemip.pruning.allocation.top_k`).

    Args:
        scores: a tensor of scores, on any device.
        k: how many entries to keep.

    Returns:
        A boolean tensor shaped like ``scores``, on its device: ``True`` at the ``k`` highest
        entries (ties: the lower position).
    """
    keep = top_k(scores.detach().cpu().numpy(), k)
    return torch.from_numpy(keep).to(scores.device)


def select(scores: list[torch.Tensor], masks: Masks, sparsity: float, allocation: str) -> Masks:
    """New masks keeping the highest ``scores`` of the prunable layers at ``sparsity``.

    Only entries kept by ``masks`` compete (pruned ones stay pruned); the ranking is
    :func:`prunemip.pruning.allocation.keep_highest`'s.

    Args:
        scores: one tensor per linear layer, shaped like its weight (ignored for non-prunable layers).
        masks: the masks in force.
        sparsity: the fraction of the prunable weights to remove, in [0, 1).
        allocation: ``global``, ``layer``, ``uniform`` or ``erk``.

    Returns:
        A copy of ``masks`` with new weight masks for the prunable layers.
    """
    layers = [i for i, prunable in enumerate(masks.prunable) if prunable]
    competing = [
        np.where(masks.weight[i].cpu().numpy(), scores[i].detach().double().cpu().numpy(), -np.inf)
        for i in layers
    ]
    result = masks.copy()
    for i, keep in zip(layers, keep_highest(competing, sparsity, allocation), strict=True):
        result.weight[i] = torch.from_numpy(keep).to(masks.weight[i].device)
    return result
