"""One run of a pruning method, end to end: data, resumable training steps, export, summary.

:func:`run_training` trains a fresh MLP with the configured method (``prunemip train``);
:func:`prune_network` prunes an already-trained network once and fine-tunes it
(``prunemip prune``). Both work in a :class:`~prunemip.pruning.runs.RunDir` named by the hash of
their configuration: every finished step is saved there and loaded instead of redone on
the next call, and the final network (``network-<method>-<sparsity>.npz``) and summary
(``report-<method>-<sparsity>.json``) are written there too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunemip.data import DATA_LOCATION_VARIABLES, Dataset, load_dataset
from prunemip.errors import PrunemipError
from prunemip.model_io import save_network
from prunemip.network import Network
from prunemip.pruning.config import RunConfig
from prunemip.pruning.export import export_network, training_metadata
from prunemip.pruning.freezing import freeze_masks
from prunemip.pruning.masks import Masks
from prunemip.pruning.methods import RUNNERS, finetune_after_pruning, post_training_masks
from prunemip.pruning.registry import METHODS
from prunemip.pruning.regularizers import Regularizer
from prunemip.pruning.runs import Checkpoint, RunDir
from prunemip.pruning.summary import PruningSummary, pruning_summary
from prunemip.pruning.training import Callback, accuracy, build_mlp, resolve_device, steps_per_epoch, train
from prunemip.torch_io import network_to_module

Log = Callable[[str], None]
StepEpochLog = Callable[[str, dict[str, float]], None]


def _quiet(message: str) -> None:
    """Discard a log line."""


@dataclass
class Context:
    """What a method runner works with: config, data, run directory, device, logging."""

    config: RunConfig
    train_data: Dataset
    test_data: Dataset
    run: RunDir
    device: torch.device
    widths: list[int]
    log: Log = _quiet
    on_epoch: StepEpochLog | None = None
    progress: bool = False
    trained_steps: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.train.seed

    def new_model(self, seed: int | None = None) -> nn.Sequential:
        """A freshly initialised MLP of the run's widths (seed: the run's)."""
        model = build_mlp(
            self.widths[0], self.widths[1:-1], self.widths[-1], self.seed if seed is None else seed
        )
        return model.to(self.device)

    def dense_masks(self, model: nn.Module) -> Masks:
        return Masks.dense(model, self.config.prune.prune_output)

    def total_steps(self) -> int:
        train_config = self.config.train
        return train_config.epochs * steps_per_epoch(len(self.train_data), train_config.batch_size)

    def accuracy(self, model: nn.Module) -> float:
        return accuracy(model, self.test_data)

    def freeze(self, model: nn.Module, masks: Masks) -> Masks:
        """``masks`` with the configured frozen entries (``model`` at initialisation, pruned)."""
        prune = self.config.prune
        if not prune.freezes:
            return masks
        masks = freeze_masks(prune, model, masks, self.train_data, self.seed)
        frozen = sum(count["frozen"] for count in masks.parameter_counts())
        self.log(f"froze {frozen} parameters at their initial values")
        return masks

    def one_shot(self, model: nn.Module, masks: Masks) -> Masks:
        """The method's one-shot masks for ``model`` (scores from the training data)."""
        return post_training_masks(self.config.prune, model, masks, self.train_data, self.seed)

    def fit(
        self,
        step: str,
        model: nn.Module,
        masks: Masks,
        *,
        epochs: int | None = None,
        callbacks: Sequence[Callback] = (),
        start_step: int = 0,
        stop_step: int | None = None,
        phase: int = 0,
    ) -> Masks:
        """Train (or load the finished step) and return the masks in force at its end."""
        if self.run.done(step):
            return self._restore(step, model)
        train_config = self.config.train if epochs is None else replace(self.config.train, epochs=epochs)
        prune = self.config.prune
        if prune.l1 or prune.rs_weight:
            spec = self.test_data.input_spec()
            box = (float(spec.lower.min()), float(spec.upper.max()))
            regularizer = Regularizer(prune.l1, prune.rs_weight, prune.rs_balls, box, prune.rs_bounds)
            callbacks = [*callbacks, regularizer]
        self.log(f"step {step}: training")
        on_epoch = self.on_epoch
        history = train(
            model, self.train_data, train_config, masks, callbacks=callbacks, start_step=start_step,
            stop_step=stop_step, phase=phase, evaluate=self.test_data,
            on_epoch=None if on_epoch is None else (lambda row: on_epoch(step, row)),
            progress=self.progress, description=step,
        )  # fmt: skip
        masks.check()
        self.run.save(step, Checkpoint(model.state_dict(), masks.state(), history))
        self.trained_steps.append(step)
        return masks

    def prune_step(self, step: str, model: nn.Module, compute: Callable[[], Masks]) -> Masks:
        """Compute masks once (or load them), apply them and note the pruned accuracy."""
        if self.run.done(step):
            return self._restore(step, model)
        masks = compute()
        masks.apply(model)
        notes = {"accuracy_pruned": self.accuracy(model)}
        self.log(f"step {step}: sparsity {masks.sparsity:.4f}, accuracy {notes['accuracy_pruned']:.4f}")
        self.run.save(step, Checkpoint(model.state_dict(), masks.state(), notes=notes))
        self.notes.update(notes)
        return masks

    def _restore(self, step: str, model: nn.Module) -> Masks:
        checkpoint = self.run.load(step)
        model.load_state_dict(checkpoint.model)
        masks = Masks.from_state(checkpoint.masks)
        masks.move_to(self.device)
        self.notes.update(checkpoint.notes)
        self.log(f"step {step}: done earlier, loaded {self.run.step_file(step)}")
        return masks


@dataclass
class Outcome:
    """The result of a run: the exported network, its pruning summary, the torch model and masks."""

    network: Network
    summary: PruningSummary
    run_dir: Path
    model: nn.Module
    masks: Masks


def _data(config: RunConfig) -> tuple[Dataset, Dataset]:
    """The (train, test) splits of ``config``, loaded once per process for runs that share them."""
    where = tuple(os.environ.get(name) for name in DATA_LOCATION_VARIABLES)
    return _splits(config.dataset, config.data_dir, config.data_seed, where)


@functools.lru_cache(maxsize=2)
def _splits(
    dataset: str, data_dir: str | None, data_seed: int, where: tuple[str | None, ...]
) -> tuple[Dataset, Dataset]:
    """``where``: the variables the loader's search path depends on (part of the cache key)."""
    del where
    return tuple(  # type: ignore[return-value]
        load_dataset(dataset, name, data_dir=data_dir, seed=data_seed) for name in ("train", "test")
    )


def run_training(
    config: RunConfig,
    runs_dir: str | Path = "runs",
    *,
    log: Log = _quiet,
    on_epoch: StepEpochLog | None = None,
    progress: bool = False,
) -> Outcome:
    """Train an MLP with ``config``'s method in its run directory and export it."""
    started = time.perf_counter()
    device = resolve_device(config.train.device)
    train_data, test_data = _data(config)
    widths = [train_data.flat().shape[1], *config.hidden, len(train_data.classes)]
    spec = config.prune.spec
    run = RunDir(runs_dir, config.key(), spec.run_as or spec.name, config.describe())
    log(f"run directory {run.path}")
    ctx = Context(config, train_data, test_data, run, device, widths, log, on_epoch, progress)
    model, masks = RUNNERS[spec.family](ctx)
    return _finish(ctx, model, masks, started, finetuned=spec.family == "structured")


def network_fingerprint(network: Network) -> str:
    """SHA-256 of the network's weights, biases and sparsity pattern."""
    digest = hashlib.sha256()
    for layer in network.layers:
        for array in (layer.weight.indptr, layer.weight.indices, layer.weight.data, layer.bias):
            digest.update(array.tobytes())
    return digest.hexdigest()


def prune_network(
    network: Network,
    config: RunConfig,
    runs_dir: str | Path = "runs",
    *,
    log: Log = _quiet,
    on_epoch: StepEpochLog | None = None,
    progress: bool = False,
) -> Outcome:
    """Prune a trained ReLU MLP once with a post-training method, then fine-tune it.

    Weights that are already zero stay pruned; ``config.hidden`` is ignored (the
    network's own widths are used).
    """
    started = time.perf_counter()
    spec = config.prune.spec
    if config.prune.freezes:
        raise PrunemipError(
            "freezing keeps weights at their random initial values, but prune starts from a trained "
            "network; freeze with `prunemip train`"
        )
    if not spec.post_training:
        allowed = ", ".join(name for name, s in METHODS.items() if s.post_training)
        raise PrunemipError(
            f"method {spec.name} trains from scratch (use `prunemip train`); prune accepts {allowed}"
        )
    activations = [layer.activation for layer in network.layers]
    if len(activations) < 2 or set(activations[:-1]) != {"relu"} or activations[-1] != "identity":
        raise PrunemipError("prune needs a ReLU MLP with a linear output layer and at least one hidden layer")
    device = resolve_device(config.train.device)
    train_data, test_data = _data(config)
    if network.n_inputs != train_data.flat().shape[1] or network.n_outputs != len(train_data.classes):
        raise PrunemipError(
            f"the network maps {network.n_inputs} inputs to {network.n_outputs} classes but {config.dataset} "
            f"has {train_data.flat().shape[1]} inputs and {len(train_data.classes)} classes"
        )
    config = replace(config, hidden=tuple(network.widths[1:-1]), prune=config.prune.for_trained_model())
    key = {**config.key(), "source": network_fingerprint(network)}
    run = RunDir(runs_dir, key, f"prune-{spec.name}", config.describe())
    log(f"run directory {run.path}")
    ctx = Context(config, train_data, test_data, run, device, network.widths, log, on_epoch, progress)
    model = network_to_module(network).to(device)
    model, masks = finetune_after_pruning(ctx, model, Masks.from_nonzeros(model, config.prune.prune_output))
    return _finish(ctx, model, masks, started, finetuned=True)


def _finish(ctx: Context, model: nn.Module, masks: Masks, started: float, finetuned: bool) -> Outcome:
    """Evaluate, export (with folding), summarise; write the network and the summary."""
    config, prune = ctx.config, ctx.config.prune
    final = ctx.accuracy(model)
    before = ctx.notes.get("accuracy_pruned") if finetuned else None
    metadata = training_metadata(
        ctx.train_data, config.train, method=prune.method, hparams=prune.hparams(),
        target_sparsity=prune.sparsity, sparsity=masks.sparsity, architecture=ctx.widths,
        test_provenance=ctx.test_data.provenance, config_hash=ctx.run.hash, run_dir=str(ctx.run.path),
        test_accuracy=final, accuracy_before_finetune=before,
    )  # fmt: skip
    network = export_network(model, masks, ctx.test_data.input_spec(), metadata)
    summary = pruning_summary(
        prune.method, prune.sparsity, masks.sparsity, ctx.widths, masks.prunable, network, final, before,
        time.perf_counter() - started, tuple(ctx.trained_steps), masks.parameter_counts(),
    )  # fmt: skip
    network = network.with_metadata(
        compression_ratio=summary.compression_ratio, theoretical_speedup=summary.theoretical_speedup,
        parameters=summary.parameter_totals(), weight_gradients_saved=summary.gradient_saving,
    )  # fmt: skip
    label = f"{prune.method}-{prune.sparsity:g}"
    save_network(network, ctx.run.path / f"network-{label}.npz")
    ctx.run.write_json(f"report-{label}.json", summary.to_dict())
    return Outcome(network, summary, ctx.run.path, model, masks)
