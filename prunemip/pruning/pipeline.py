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
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from prunemip.data import DATA_LOCATION_VARIABLES, Dataset, load_dataset
from prunemip.devices import torch_device
from prunemip.errors import PrunemipError
from prunemip.model_io import save_network
from prunemip.network import Network
from prunemip.pruning.config import RunConfig
from prunemip.pruning.context import Context, Log, StepEpochLog, quiet
from prunemip.pruning.export import export_network, training_metadata
from prunemip.pruning.masks import Masks
from prunemip.pruning.methods import RUNNERS, finetune_after_pruning
from prunemip.pruning.registry import METHODS
from prunemip.pruning.runs import RunDir
from prunemip.pruning.summary import PruningSummary, RunRecord, pruning_summary
from prunemip.torch_io import network_to_module


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
    log: Log = quiet,
    on_epoch: StepEpochLog | None = None,
    progress: bool = False,
) -> Outcome:
    """Train an MLP with ``config``'s method in its run directory and export it (``prunemip train``).

    Args:
        config: data, architecture, training and pruning method.
        runs_dir: where the run directory (named by the hash of ``config``) goes.
        log: receives one line per step (default: silent).
        on_epoch: receives ``(step, row)`` after every epoch (the rows of
            :func:`~prunemip.pruning.training.train`).
        progress: show a progress bar per training step.

    Returns:
        The exported network (also written to the run directory with its summary), the
        pruning summary, the run directory, and the trained torch model and masks.

    Raises:
        PrunemipError: on a configuration the data does not fit, an unavailable device, or
            an unreadable checkpoint in the run directory.
    """
    started = time.perf_counter()
    device = torch_device(config.train.device)
    train_data, test_data = _data(config)
    widths = [train_data.flat().shape[1], *config.hidden, len(train_data.classes)]
    spec = config.prune.spec
    run = RunDir(runs_dir, config.key(), spec.run_as or spec.name, config.describe())
    log(f"run directory {run.path}")
    ctx = Context(config, train_data, test_data, run, device, widths, log, on_epoch, progress)
    model, masks = RUNNERS[spec.family](ctx)
    return _finish(ctx, model, masks, started, finetuned=spec.family == "structured")


def network_fingerprint(network: Network) -> str:
    """SHA-256 of the network's weights, biases and sparsity pattern.

    Args:
        network: the network.

    Returns:
        The digest as 64 hex digits.
    """
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
    log: Log = quiet,
    on_epoch: StepEpochLog | None = None,
    progress: bool = False,
) -> Outcome:
    """Prune a trained ReLU MLP once with a post-training method, then fine-tune it (``prunemip prune``).

    Weights that are already zero stay pruned.

    Args:
        network: the trained MLP (ReLU hidden layers, linear output) to prune.
        config: data, fine-tuning and the post-training pruning method; ``config.hidden`` is
            ignored (the network's own widths are used).
        runs_dir: where the run directory (named by the hash of ``config`` and of the
            network's weights) goes.
        log: receives one line per step (default: silent).
        on_epoch: receives ``(step, row)`` after every fine-tuning epoch.
        progress: show a progress bar while fine-tuning.

    Returns:
        The exported pruned network (also written to the run directory with its summary),
        the pruning summary, the run directory, and the torch model and masks.

    Raises:
        PrunemipError: if the method trains from scratch or freezes weights, the network is
            not a ReLU MLP, or it does not fit the dataset's inputs and classes.
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
    device = torch_device(config.train.device)
    train_data, test_data = _data(config)
    if network.n_inputs != train_data.flat().shape[1] or network.n_outputs != len(train_data.classes):
        raise PrunemipError(
            f"the network maps {network.n_inputs} inputs to {network.n_outputs} classes but {config.dataset} "
            f"has {train_data.flat().shape[1]} inputs and {len(train_data.classes)} classes"
        )
    config = replace(config, hidden=tuple(network.widths[1:-1]), prune=config.prune.for_trained_model())
    # The fine-tuning length decides the result, so it names the run too (--finetune 1 and 5 differ).
    key = {
        **config.key(),
        "source": network_fingerprint(network),
        "finetune_epochs": config.prune.finetune_epochs,
    }
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
        ctx.train_data,
        config.train,
        method=prune.method,
        hparams=prune.hparams(),
        target_sparsity=prune.sparsity,
        sparsity=masks.sparsity,
        architecture=ctx.widths,
        test_provenance=ctx.test_data.provenance,
        config_hash=ctx.run.hash,
        run_dir=str(ctx.run.path),
        test_accuracy=final,
        accuracy_before_finetune=before,
    )
    network = export_network(model, masks, ctx.test_data.input_spec(), metadata)
    seconds = time.perf_counter() - started
    record = RunRecord(prune.method, prune.sparsity, final, before, seconds, tuple(ctx.trained_steps))
    summary = pruning_summary(record, network, ctx.widths, masks)
    network = network.with_metadata(
        compression_ratio=summary.compression_ratio,
        theoretical_speedup=summary.theoretical_speedup,
        parameters=summary.parameter_totals(),
        weight_gradients_saved=summary.gradient_saving,
    )
    label = f"{prune.method}-{prune.sparsity:g}"
    save_network(network, ctx.run.path / f"network-{label}.npz")
    ctx.run.write_json(f"report-{label}.json", summary.to_dict())
    return Outcome(network, summary, ctx.run.path, model, masks)
