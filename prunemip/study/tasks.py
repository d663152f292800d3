"""What a worker runs: train one model, attack one image. Pure functions of their inputs.

Tasks take and return plain objects (networks, arrays, dicts), so they run the same on a
local process pool or on a remote Dask worker with no shared file system.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from prunemip.engine.attack import AttackOptions, find_adversarial_example, target_order
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.solvers.highs import HighsOptions
from prunemip.study.config import AUTO
from prunemip.study.jobs import ModelJob, SolveJob

if TYPE_CHECKING:
    from prunemip.pruning.config import RunConfig
    from prunemip.pruning.pipeline import StepEpochLog

TRAINING_TOPIC = "prunemip-training"
"""The Dask event topic of training progress: ``{"key", "step", **epoch row}`` per epoch."""


def _epoch_events(job: ModelJob) -> StepEpochLog | None:
    """Send each finished epoch of ``job`` to the client as a Dask event (None off a worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not running inside a Dask task
        return None

    def send(step: str, row: dict[str, float]) -> None:
        worker.log_event(TRAINING_TOPIC, {"key": job.key, "step": step, **row})

    return send


def train_task(job: ModelJob, dense: Network | None) -> tuple[Network, dict[str, Any]]:
    """Train the job's model through :mod:`prunemip.pruning.pipeline`.

    The dense baseline is trained from scratch; a post-training method (magnitude, SNIP,
    neuron-magnitude, ...) prunes ``dense`` and fine-tunes it, so every such model starts
    from the same dense network (Blalock et al. 2020); a method that shapes training itself
    (group lasso, IMP, SET/RigL, GMP, ...) trains from scratch with its own schedule; ``auto``
    is the network :func:`prunemip.study.auto.search` chooses (see :func:`auto_task`). On a
    Dask worker, every finished epoch is reported on :data:`TRAINING_TOPIC`.

    Args:
        job: the model to train.
        dense: the trained dense model of the same seed (needed by post-training methods).

    Returns:
        The network (its metadata holding ``study_key``) and its metrics (accuracy, nnz, ...).

    Raises:
        PrunemipError: for options the method does not take.
    """
    import tempfile

    import torch

    from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig
    from prunemip.pruning.pipeline import prune_network, run_training

    start = time.perf_counter()
    torch.set_num_threads(1)
    spec = job.training
    train = TrainConfig(
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        lr=spec.lr,
        optimizer=spec.optimizer,
        schedule="none",
        seed=job.seed,
    )
    if job.method == AUTO:
        config = RunConfig(
            job.dataset,
            job.hidden,
            train,
            PruneConfig(finetune_epochs=spec.finetune_epochs),
            job.data_dir,
            job.split_seed,
        )
        return auto_task(job, config, start)
    try:
        prune = PruneConfig(
            method=job.method,
            sparsity=job.sparsity,
            finetune_epochs=spec.finetune_epochs,
            **dict(job.options),
        )
    except TypeError as error:
        raise PrunemipError(
            f"method {job.method}: bad options {sorted(dict(job.options))} ({error})"
        ) from None
    config = RunConfig(
        dataset=job.dataset,
        hidden=job.hidden,
        train=train,
        prune=prune,
        data_dir=job.data_dir,
        data_seed=job.split_seed,
    )
    with tempfile.TemporaryDirectory(prefix="prunemip-study-") as runs_dir:
        if prune.spec.post_training and not job.is_dense:
            if dense is None:
                raise ValueError("a post-training method needs its dense model")
            outcome = prune_network(dense, config, runs_dir, on_epoch=_epoch_events(job))
        else:
            outcome = run_training(config, runs_dir, on_epoch=_epoch_events(job))
    network = outcome.network
    metrics = {
        "accuracy": outcome.summary.accuracy,
        "nnz": network.nnz,
        # Of the prunable weights against the trained architecture: the exported network may
        # have lost whole neurons, so its own density would understate the pruning.
        "sparsity_achieved": outcome.summary.sparsity,
        "widths": network.widths,
        "train_seconds": time.perf_counter() - start,
    }
    return network.with_metadata(study_key=job.key), metrics


def auto_task(job: ModelJob, config: RunConfig, start: float) -> tuple[Network, dict[str, Any]]:
    """The ``auto`` job: search on the training split's validation part, then test the choice.

    The search (:func:`prunemip.study.auto.search`) trains its own dense model on the training
    part, so that its validation accuracy is the reference; only the chosen network meets the
    test split, for the study's accuracy.

    Args:
        job: the ``auto`` model job (options: ``accuracy_budget``, optional ``balls`` and
            :class:`~prunemip.study.search_space.SearchSpace` fields).
        config: the dataset, architecture, training and last-round fine-tuning epochs.
        start: when the job started (``time.perf_counter``).

    Returns:
        The chosen network (metadata: ``study_key`` and ``auto_search``) and its metrics.
    """
    import tempfile

    from prunemip.data import load_dataset
    from prunemip.study.auto import search
    from prunemip.study.mip_cost import DEFAULT_BALLS
    from prunemip.study.search_space import SearchSpace

    options = dict(job.options)
    budget = options.pop("accuracy_budget")
    balls = options.pop("balls", DEFAULT_BALLS)
    with tempfile.TemporaryDirectory(prefix="prunemip-auto-") as runs_dir:
        result = search(config, budget, runs_dir, space=SearchSpace.from_options(options), balls=balls)
    test = load_dataset(job.dataset, "test", data_dir=job.data_dir, seed=job.split_seed)
    network = result.network
    metrics = {
        "accuracy": float(np.mean(network.predict(test.flat()) == test.labels)),
        "val_accuracy": result.chosen.accuracy,
        "dense_val_accuracy": result.dense.accuracy,
        "auto_choice": result.chosen.candidate.label,
        "auto_candidates": len(result.evaluations) - 1,
        "nnz": network.nnz,
        "sparsity_achieved": result.chosen.sparsity,
        "widths": network.widths,
        "train_seconds": time.perf_counter() - start,
    }
    return network.with_metadata(study_key=job.key), metrics


def _target(network: Network, x0: np.ndarray, label: int, rule: str) -> int | None:
    return target_order(network.forward(x0), label)[0] if rule == "runner-up" else None


def solve_task(network: Network, x0: np.ndarray, label: int, job: SolveJob) -> dict[str, Any]:
    """Attack one image and return the result record (no file access).

    Args:
        network: the network attacked.
        x0: the clean image, flat.
        label: its true class.
        job: the perturbation, target rule, mode, bounds, time limit and solver seed.

    Returns:
        The record's outcome fields (``status``, ``found``, timings, MIP size, witness).
    """
    options = AttackOptions(
        mode=job.mode,  # type: ignore[arg-type]
        bounds=job.bounds,
        highs=HighsOptions(time_limit=job.time_limit, threads=1, random_seed=job.solver_seed),
        pgd=job.gradient_attack,
    )
    result = find_adversarial_example(
        network,
        x0,
        label,
        norm=job.perturbation.norm,
        radius=job.perturbation.radius,
        target=_target(network, x0, label, job.target),
        options=options,
    )
    encoding = result.encoding
    witness = result.witness
    record: dict[str, Any] = {
        "status": result.status,
        "found": result.found,
        "seconds": result.total_seconds,
        "solve_seconds": result.solve_seconds,
        "bounds_seconds": result.bounds_seconds,
        "nodes": result.nodes,
        # The MIP's size; None when the attack was decided before any MIP was built.
        "build_seconds": encoding.build_seconds if encoding else None,
        "binaries": encoding.binaries if encoding else None,
        "unstable": encoding.unstable_neurons if encoding else None,
        "mip_nonzeros": encoding.nonzeros if encoding else None,
        "bigm_width": encoding.total_bigm_width if encoding else None,
        "bounds_stages": [str(stage["method"]) for stage in encoding.bounds_stages] if encoding else None,
        "pgd_seconds": result.pgd_seconds,
        "margin": None if witness is None else witness.margin,
        "target": None if witness is None else witness.target,
    }
    if result.found and witness is not None:
        record["x0"] = [float(v) for v in x0]
        record["x_adv"] = [float(v) for v in witness.x]
    return record
