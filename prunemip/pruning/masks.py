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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunemip.errors import PrunemipError


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``model`` in forward order."""
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


@dataclass
class Masks:
    """Boolean weight and bias masks of an MLP's linear layers (``True`` = kept).

    ``frozen`` and ``frozen_bias`` (``True`` = kept at its initial value) default to
    nothing frozen.
    """

    weight: list[torch.Tensor]
    bias: list[torch.Tensor]
    prunable: tuple[bool, ...]
    frozen: list[torch.Tensor] = field(default_factory=list)
    frozen_bias: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frozen = self.frozen or [torch.zeros_like(m) for m in self.weight]
        self.frozen_bias = self.frozen_bias or [torch.zeros_like(m) for m in self.bias]

    @classmethod
    def dense(cls, model: nn.Module, prune_output: bool = False) -> Masks:
        """All-ones masks; the output layer is prunable only with ``prune_output``."""
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
        """Masks of the nonzero weights: an already-sparse model keeps its zeros pruned."""
        masks = cls.dense(model, prune_output)
        masks.weight = [layer.weight.detach() != 0 for layer in linear_layers(model)]
        return masks

    # ----------------------------------------------------------------- enforcement
    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero every masked weight and bias in place."""
        for parameter, mask in self.pairs(model):
            parameter.masked_fill_(~mask, 0.0)

    @torch.no_grad()
    def mask_gradients(self, model: nn.Module) -> None:
        """Zero the gradients at pruned and frozen entries (after ``backward``, before the step)."""
        for parameter, trainable in self.trainable_pairs(model):
            if parameter.grad is not None:
                parameter.grad.masked_fill_(~trainable, 0.0)

    def pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(parameter, mask)`` for every weight and bias of ``model``."""
        for layer, weight, bias in zip(linear_layers(model), self.weight, self.bias, strict=True):
            yield layer.weight, weight
            if layer.bias is not None:
                yield layer.bias, bias

    def trainable_pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(parameter, kept and not frozen)`` for every weight and bias of ``model``."""
        layers = zip(linear_layers(model), self.weight, self.bias, self.frozen, self.frozen_bias, strict=True)
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
        """
        layer = linear_layers(model)[index]
        changed = mask != self.weight[index]
        layer.weight.masked_fill_(changed, 0.0)
        if optimizer is not None:
            zero_optimizer_state(optimizer, layer.weight, changed)
        self.weight[index] = mask.clone()

    # ----------------------------------------------------------------- accounting
    def nnz(self, prunable_only: bool = True) -> int:
        return sum(
            int(m.sum()) for m, p in zip(self.weight, self.prunable, strict=True) if p or not prunable_only
        )

    def size(self, prunable_only: bool = True) -> int:
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
            counts.append({
                "trainable": weight.numel() + bias.numel() - n_frozen - n_zero,
                "frozen": n_frozen,
                "zero": n_zero,
                "weights_untrained": int((~weight | frozen).sum()),
            })  # fmt: skip
        return counts

    def path_count(self) -> float:
        """Number of input→output paths through kept weights (float64: no overflow for MLPs)."""
        paths = torch.ones(self.weight[0].shape[1], dtype=torch.float64)
        for mask in self.weight:
            paths = mask.cpu().double() @ paths
        return float(paths.sum())

    def check(self) -> None:
        """Refuse layer collapse (every prunable layer keeps a weight and some path survives)
        and frozen entries that are also pruned."""
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
        def clone(masks: list[torch.Tensor]) -> list[torch.Tensor]:
            return [m.clone() for m in masks]

        return Masks(
            clone(self.weight), clone(self.bias), self.prunable, clone(self.frozen), clone(self.frozen_bias)
        )

    def move_to(self, device: torch.device) -> None:
        """Move the masks to ``device`` in place (callbacks keep updating this object)."""
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
        """The masks of :meth:`state` (checkpoints written before freezing existed: nothing frozen)."""
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
    """Zero every per-entry buffer the optimizer keeps for ``parameter`` at ``where``."""
    for value in optimizer.state.get(parameter, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
            value.masked_fill_(where, 0.0)
