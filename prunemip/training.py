"""Train feed-forward ReLU classifiers and prune them by global weight magnitude.

Masks are the single source of truth: they are installed with
``torch.nn.utils.prune.custom_from_mask``, so every forward pass uses ``W ⊙ M`` and the
gradient at a pruned entry is exactly zero; export reads ``weight_orig ⊙ weight_mask``
in float64 (never the raw parameter, which momentum or weight decay may move).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from prunemip.data import Dataset
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.torch_io import network_from_module

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (recorded in the exported network's metadata)."""

    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.hidden or any(width <= 0 for width in self.hidden):
            raise PrunemipError(f"hidden layer widths must be positive, got {self.hidden}")
        if self.epochs < 0 or self.batch_size <= 0 or self.lr <= 0:
            raise PrunemipError("epochs must be >= 0, batch size and learning rate > 0")
        if self.optimizer not in OPTIMIZERS:
            raise PrunemipError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")


EpochCallback = Callable[[int, float, float], None]


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; asking for CUDA without a GPU is a clear error."""
    if name not in ("cpu", "cuda"):
        raise PrunemipError(f"unknown device {name!r}; choose cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise PrunemipError("--device cuda was requested but PyTorch sees no CUDA GPU")
    return torch.device(name)


def build_mlp(n_inputs: int, hidden: tuple[int, ...], n_outputs: int) -> nn.Sequential:
    """``Flatten → (Linear → ReLU)* → Linear`` with PyTorch's default initialisation."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


def _tensors(data: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(data.flat(), dtype=torch.float32, device=device)
    labels = torch.as_tensor(data.labels, dtype=torch.long, device=device)
    return images, labels


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, device: str = "cpu") -> float:
    """Fraction of ``data`` classified correctly."""
    model.eval()
    images, labels = _tensors(data, resolve_device(device))
    return float((model(images).argmax(dim=1) == labels).float().mean())


def train(
    model: nn.Module, data: Dataset, config: TrainConfig, on_epoch: EpochCallback | None = None
) -> list[dict[str, float]]:
    """Minimise cross-entropy with mini-batches; returns per-epoch loss, accuracy and seconds.

    A fresh optimizer is built on every call, so fine-tuning after pruning starts clean.
    """
    device = resolve_device(config.device)
    model.to(device)
    images, labels = _tensors(data, device)
    generator = torch.Generator().manual_seed(config.seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer: torch.optim.Optimizer
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    history = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(labels.numel(), generator=generator).to(device)
        total_loss, correct = 0.0, 0
        for first in range(0, labels.numel(), config.batch_size):
            batch = order[first : first + config.batch_size]
            logits = model(images[batch])
            loss = nn.functional.cross_entropy(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * batch.numel()
            correct += int((logits.argmax(dim=1) == labels[batch]).sum())
        row = {
            "epoch": epoch + 1,
            "loss": total_loss / labels.numel(),
            "train_accuracy": correct / labels.numel(),
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch + 1, row["loss"], row["train_accuracy"])
    return history


def global_magnitude_masks(
    model: nn.Module, sparsity: float, include_output: bool = False
) -> dict[nn.Linear, torch.Tensor]:
    """Masks that zero the ``sparsity`` fraction of smallest-magnitude weights, ranked globally.

    The output layer is left dense unless ``include_output``. Exactly
    ``round(sparsity · N)`` weights are removed (ties broken by position); every layer keeps
    at least one weight.
    """
    if not 0.0 <= sparsity < 1.0:
        raise PrunemipError(f"sparsity must be in [0, 1), got {sparsity}")
    layers = linear_layers(model)
    prunable = layers if include_output else layers[:-1]
    if not prunable:
        raise PrunemipError("the model has no prunable layer (only the output layer)")
    weights = [_effective_weight(layer).detach().abs().flatten().cpu().double() for layer in prunable]
    scores = torch.cat(weights)
    n_remove = round(sparsity * scores.numel())
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[torch.argsort(scores, stable=True)[:n_remove]] = False
    masks: dict[nn.Linear, torch.Tensor] = {}
    offset = 0
    for layer, flat in zip(prunable, weights, strict=True):
        mask = keep[offset : offset + flat.numel()].reshape(layer.weight.shape)
        if not mask.any():  # never let a layer collapse: keep its largest weight
            mask.view(-1)[int(torch.argmax(flat))] = True
        masks[layer] = mask.to(layer.weight.device, torch.float32)
        offset += flat.numel()
    return masks


def _effective_weight(layer: nn.Linear) -> torch.Tensor:
    """``W ⊙ M`` for a pruned layer, ``W`` otherwise."""
    if prune.is_pruned(layer) and hasattr(layer, "weight_orig"):
        return layer.weight_orig * layer.weight_mask
    return layer.weight


def apply_masks(masks: dict[nn.Linear, torch.Tensor]) -> None:
    """Install masks as the layers' pruning reparametrisation (replacing earlier ones)."""
    for layer, mask in masks.items():
        if prune.is_pruned(layer):
            prune.remove(layer, "weight")
        prune.custom_from_mask(layer, "weight", mask)


def export_network(model: nn.Module, data: Dataset, config: TrainConfig, **metadata: object) -> Network:
    """The float64 ``Network`` of ``model`` with the dataset's input range and provenance."""
    network = network_from_module(model.cpu(), data.input_spec())
    return network.with_metadata(
        dataset=data.name,
        data_provenance=data.provenance,
        train_config={**asdict(config), "hidden": list(config.hidden)},
        **metadata,
    )
