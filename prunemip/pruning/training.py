"""Train feed-forward ReLU classifiers under pruning masks.

One short loop (:func:`train`) runs every method: mini-batch cross-entropy with SGD
(heavy-ball momentum), Adam or AdamW, a per-step learning-rate
schedule (none, cosine, step), deterministic batch order from the seed, and
:class:`Callback` hooks through which the pruning families act (regularisers add a loss,
RigL skips the optimizer step on mask-update steps, SET/RigL/GMP change masks after a
step, group lasso applies its proximal step).

Masks are enforced on every step (:mod:`prunemip.pruning.masks`): gradients are masked
at pruned and frozen entries before ``optimizer.step()``, weight decay is applied by the
loop to trainable entries only (:func:`apply_weight_decay`; the optimizer itself has
none), and the parameters are masked after the step. So pruned entries stay exactly
zero and frozen ones exactly at their initial values, with zero optimizer state, through
momentum, Adam's moments and weight decay. Tensors with no trainable entry (a frozen
layer) have ``requires_grad`` off while training: autograd skips their gradients.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from prunemip.data import Dataset
from prunemip.devices import torch_device
from prunemip.pruning.config import TrainConfig
from prunemip.pruning.masks import Masks

__all__ = [
    "Callback",
    "TrainConfig",
    "TrainOptions",
    "accuracy",
    "apply_weight_decay",
    "build_mlp",
    "lr_factor",
    "make_optimizer",
    "steps_per_epoch",
    "train",
]

EpochLog = Callable[[dict[str, float]], None]


def build_mlp(n_inputs: int, hidden: Sequence[int], n_outputs: int, seed: int | None = None) -> nn.Sequential:
    """``Flatten → (Linear → ReLU)* → Linear`` with PyTorch's default initialisation.

    Args:
        n_inputs: input width.
        hidden: hidden widths.
        n_outputs: output width (classes).
        seed: draw the initialisation from this seed without touching the global random
            state (default: from the global state).

    Returns:
        The MLP, on the CPU.
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_inputs
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        return nn.Sequential(*layers)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


#: float32 images and labels of each dataset per device, converted once and kept while the
#: dataset lives (a run calls ``train`` and ``accuracy`` many times on the same splits).
_TENSORS: weakref.WeakKeyDictionary[Dataset, dict[str, tuple[torch.Tensor, torch.Tensor]]] = (
    weakref.WeakKeyDictionary()
)


def _tensors(data: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    per_device = _TENSORS.setdefault(data, {})
    if str(device) not in per_device:
        images = torch.as_tensor(data.flat(), dtype=torch.float32, device=device)
        labels = torch.as_tensor(data.labels, dtype=torch.long, device=device)
        per_device[str(device)] = (images, labels)
    return per_device[str(device)]


@torch.no_grad()
def correct(model: nn.Module, data: Dataset) -> np.ndarray:
    """Which examples of ``data`` the model classifies correctly.

    Args:
        model: the classifier (evaluated on its own device, in eval mode).
        data: the examples and labels.

    Returns:
        One boolean per example.
    """
    model.eval()
    images, labels = _tensors(data, _device_of(model))
    hits = [
        (model(images[i : i + 8192]).argmax(dim=1) == labels[i : i + 8192]).cpu().numpy()
        for i in range(0, len(labels), 8192)
    ]
    return np.concatenate(hits) if hits else np.zeros(0, bool)


def accuracy(model: nn.Module, data: Dataset) -> float:
    """Fraction of ``data`` classified correctly.

    Args:
        model: the classifier (evaluated on its own device, in eval mode).
        data: the examples and labels.

    Returns:
        The accuracy in [0, 1] (0 for no examples).
    """
    return hit_rate(correct(model, data))


def hit_rate(hits: np.ndarray) -> float:
    """The share of True in ``hits`` (0 for none): the accuracy of :func:`correct`'s answer."""
    return float(hits.mean()) if hits.size else 0.0


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """A fresh optimizer over all parameters, without weight decay (see :func:`apply_weight_decay`).

    ``adamw`` is Adam here: its decoupled decay is the loop's. Both use torch's fused
    kernels (one pass over each tensor per step, same update rule; the step time is in
    ``experiments/benchmarks/README.md``).

    Args:
        model: the model whose parameters are optimised.
        config: the optimizer, learning rate and momentum.

    Returns:
        Fused Adam (``adam``, ``adamw``) or SGD with heavy-ball momentum (``sgd``).
    """
    parameters = list(model.parameters())
    if config.optimizer in ("adam", "adamw"):
        return torch.optim.Adam(parameters, lr=config.lr, fused=True)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, fused=True)


@torch.no_grad()
def apply_weight_decay(model: nn.Module, masks: Masks, config: TrainConfig, lr: float) -> None:
    """Weight decay λ on the trainable entries only (call just before ``optimizer.step()``).

    ``sgd``, ``adam``: L2 on the gradient, g ← g + λ·w (what torch's ``weight_decay`` does);
    ``adamw``: decoupled, w ← w − ηλ·w (torch's AdamW, before the Adam update). Pruned and
    frozen entries get neither, so their gradient stays 0 and no optimizer state builds up.

    Args:
        model: the model being trained (its gradients are computed).
        masks: which entries are trainable.
        config: the optimizer and λ (``weight_decay``).
        lr: the step's learning rate η.
    """
    decay = config.weight_decay
    if not decay:
        return
    for parameter, trainable in masks.trainable_pairs(model):
        if parameter.grad is None:
            continue
        if config.optimizer == "adamw":
            parameter.sub_(parameter * trainable, alpha=lr * decay)
        else:
            parameter.grad.add_(parameter * trainable, alpha=decay)


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """⌈n_examples / batch_size⌉ mini-batches, at least one.

    Args:
        n_examples: the training examples.
        batch_size: the mini-batch size.

    Returns:
        The steps of one epoch.
    """
    return max(1, math.ceil(n_examples / batch_size))


def lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at global step ``step`` of ``total_steps``.

    Args:
        step: the global step, from 0.
        total_steps: the steps of the whole training phase.
        config: the schedule (``none``, ``cosine``: ½(1 + cos(π t/T)), ``step``).

    Returns:
        The factor applied to ``config.lr``.
    """
    progress = step / max(total_steps, 1)
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.step_gamma ** sum(progress >= m for m in config.step_milestones)
    return 1.0


class Callback:
    """Hooks into :func:`train`; every hook is a no-op by default."""

    def extra_loss(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
        """A term added to the mini-batch loss (regularisers).

        Args:
            model: the model being trained.
            images: the mini-batch's inputs, one flat row per example.

        Returns:
            A differentiable scalar, or ``None`` for nothing.
        """
        return None

    def before_step(
        self, step: int, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer
    ) -> bool:
        """Called with the dense gradients in ``.grad``, before the optimizer step.

        Args:
            step: the global training step, from 0.
            model: the model being trained.
            masks: the masks in force.
            optimizer: the model's optimizer.

        Returns:
            False to skip the optimizer step (skipped when any callback returns False).
        """
        return True

    def after_step(
        self, step: int, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer, lr: float
    ) -> None:
        """Called after the step (and after the masks were re-applied).

        Args:
            step: the global training step, from 0.
            model: the model being trained.
            masks: the masks in force.
            optimizer: the model's optimizer.
            lr: the step's learning rate.
        """


@contextlib.contextmanager
def _untrainable_tensors_off(model: nn.Module, masks: Masks) -> Iterator[None]:
    """Turn ``requires_grad`` off for tensors with no trainable entry, and back on afterwards."""
    untrainable = [parameter for parameter, trainable in masks.trainable_pairs(model) if not trainable.any()]
    for parameter in untrainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in untrainable:
            parameter.requires_grad_(True)


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


@dataclass(frozen=True)
class TrainOptions:
    """How one call of :func:`train` runs: which steps, which hooks, what it reports.

    ``start_step`` and ``stop_step`` (``None``: the end) delimit the global steps run;
    ``phase`` separates the batch orders of a run's training phases (pre-training 0,
    fine-tuning 1). ``evaluate`` adds the test accuracy to each epoch's row, ``on_epoch``
    receives the rows as they finish and ``progress`` shows a progress bar titled
    ``description``.
    """

    callbacks: Sequence[Callback] = ()
    start_step: int = 0
    stop_step: int | None = None
    phase: int = 0
    evaluate: Dataset | None = None
    on_epoch: EpochLog | None = None
    progress: bool = False
    description: str = "training"


def train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    masks: Masks | None = None,
    options: TrainOptions | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` for global steps ``[start_step, stop_step)`` of ``config.epochs`` epochs.

    A fresh optimizer is built on every call. The masks are moved to the device and kept
    in force; callbacks may change them in place. The batch order of epoch e is the
    permutation drawn from ``numpy.random.default_rng([seed, phase, e])``, so a run
    started at any step sees the same batches.

    Args:
        model: the MLP to train, in place (moved to ``config.device``).
        data: the training split.
        config: optimizer, learning-rate schedule, batch size, epochs, seed, device.
        masks: the masks in force (default: dense).
        options: steps, phase, callbacks and feedback of this call (default: all steps,
            phase 0, no callbacks, silent).

    Returns:
        One row per (partial) epoch: epoch (of ``epochs``), loss, train accuracy, test
        accuracy (with ``options.evaluate``), learning rate, sparsity of the prunable
        layers, seconds.
    """
    options = options or TrainOptions()
    device = torch_device(config.device)
    model.to(device)
    masks = masks if masks is not None else Masks.dense(model)
    masks.move_to(device)
    masks.apply(model)
    images, labels = _tensors(data, device)
    per_epoch = steps_per_epoch(len(labels), config.batch_size)
    total = config.epochs * per_epoch
    stop = total if options.stop_step is None else min(options.stop_step, total)
    optimizer = make_optimizer(model, config)
    callbacks = options.callbacks
    history: list[dict[str, float]] = []
    with (
        _untrainable_tensors_off(model, masks),
        _progress_bar(options.progress, options.description, max(stop - options.start_step, 0)) as advance,
    ):
        step = options.start_step
        while step < stop:
            epoch = step // per_epoch
            rng = np.random.default_rng([config.seed, options.phase, epoch])
            order = torch.from_numpy(rng.permutation(len(labels))).to(device)
            started, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            model.train()
            while step < min(stop, (epoch + 1) * per_epoch):
                first = (step - epoch * per_epoch) * config.batch_size
                batch = order[first : first + config.batch_size]
                lr = config.lr * lr_factor(step, total, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                logits = model(images[batch])
                loss = nn.functional.cross_entropy(logits, labels[batch])
                for callback in callbacks:
                    extra = callback.extra_loss(model, images[batch])
                    if extra is not None:
                        loss = loss + extra
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                take_step = [callback.before_step(step, model, masks, optimizer) for callback in callbacks]
                if all(take_step):
                    masks.mask_gradients(model)
                    apply_weight_decay(model, masks, config, lr)
                    optimizer.step()
                masks.apply(model)
                for callback in callbacks:
                    callback.after_step(step, model, masks, optimizer, lr)
                seen += len(batch)
                loss_sum += loss.item() * len(batch)
                correct += int((logits.argmax(dim=1) == labels[batch]).sum())
                step += 1
                advance()
            row = {
                "epoch": epoch + 1,
                "epochs": config.epochs,
                "loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "lr": lr,
                "sparsity": masks.sparsity,
                "seconds": time.perf_counter() - started,
            }
            if options.evaluate is not None:
                row["test_accuracy"] = accuracy(model, options.evaluate)
            history.append(row)
            if options.on_epoch is not None:
                options.on_epoch(row)
    return history
