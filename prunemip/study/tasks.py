"""What a worker runs: train one model, attack one image. Pure functions of their inputs.

Tasks take and return plain objects (networks, arrays, dicts), so they run the same on a
local process pool or on a remote Dask worker with no shared file system.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from prunemip.adversarial import find_adversarial_example, target_order
from prunemip.data import load_dataset
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.solvers.highs import HighsOptions
from prunemip.study.jobs import ModelJob, SolveJob


def train_task(job: ModelJob, dense: Network | None) -> tuple[Network, dict[str, Any]]:
    """Train the dense model, or prune ``dense`` with the job's method and fine-tune it."""
    import torch

    from prunemip.export import export_network, training_metadata
    from prunemip.pruning.config import TrainConfig
    from prunemip.pruning.masks import Masks
    from prunemip.torch_io import network_to_module
    from prunemip.training import accuracy, build_mlp, train

    start = time.perf_counter()
    train_data = load_dataset(job.dataset, "train", data_dir=job.data_dir, seed=job.split_seed)
    test_data = load_dataset(job.dataset, "test", data_dir=job.data_dir, seed=job.split_seed)
    spec = job.training
    config = TrainConfig(
        epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, optimizer=spec.optimizer,
        schedule="none", seed=job.seed,
    )  # fmt: skip
    torch.set_num_threads(1)
    if job.is_dense:
        model = build_mlp(train_data.flat().shape[1], job.hidden, len(train_data.classes), seed=job.seed)
        masks = Masks.dense(model)
        train(model, train_data, config, masks)
        metadata = training_metadata(train_data, config, method="dense")
    else:
        if dense is None:
            raise ValueError("a pruned model needs its dense model")
        model = network_to_module(dense)
        config = replace(config, epochs=spec.finetune_epochs, seed=job.seed + 1)
        masks = _prune(model, job.method, job.sparsity, dict(job.options), train_data, job.seed)
        train(model, train_data, config, masks)
        metadata = training_metadata(train_data, config, method=job.method, sparsity=job.sparsity)
    network = export_network(model, masks, train_data.input_spec(), metadata)
    metrics = {
        "accuracy": accuracy(model, test_data),
        "nnz": network.nnz,
        "sparsity_achieved": network.sparsity,
        "widths": network.widths,
        "train_seconds": time.perf_counter() - start,
    }
    return network.with_metadata(study_key=job.key), metrics


def _prune(model: Any, method: str, sparsity: float, options: dict[str, Any], data: Any, seed: int) -> Any:
    """The masks of a registered post-training method (``options``: its PruneConfig fields)."""
    from prunemip.pruning.config import PruneConfig
    from prunemip.pruning.masks import Masks
    from prunemip.pruning.methods import post_training_masks

    try:
        prune = PruneConfig(method=method, sparsity=sparsity, **options)
    except TypeError as error:
        raise PrunemipError(f"method {method}: bad options {sorted(options)} ({error})") from None
    if not prune.spec.post_training:
        raise PrunemipError(f"method {method} trains from scratch; a study prunes trained models")
    return post_training_masks(prune, model, Masks.dense(model, prune.prune_output), data, seed)


def _target(network: Network, x0: np.ndarray, label: int, rule: str) -> int | None:
    return target_order(network.forward(x0), label)[0] if rule == "runner-up" else None


def solve_task(network: Network, x0: np.ndarray, label: int, job: SolveJob) -> dict[str, Any]:
    """Attack one image and return the result record (no file access)."""
    options = HighsOptions(time_limit=job.time_limit, threads=1, random_seed=job.solver_seed)
    result = find_adversarial_example(
        network, x0, label, norm=job.perturbation.norm, radius=job.perturbation.radius,
        target=_target(network, x0, label, job.target), mode=job.mode, options=options,  # type: ignore[arg-type]
    )  # fmt: skip
    encoding = result.encoding
    witness = result.witness
    record: dict[str, Any] = {
        "status": result.status,
        "found": result.found,
        "seconds": result.total_seconds,
        "solve_seconds": result.solve_seconds,
        "bounds_seconds": result.bounds_seconds,
        "build_seconds": encoding.build_seconds if encoding else 0.0,
        "nodes": result.nodes,
        "binaries": encoding.binaries if encoding else 0,
        "unstable": encoding.unstable_neurons if encoding else 0,
        "mip_nonzeros": encoding.nonzeros if encoding else 0,
        "bigm_width": encoding.total_bigm_width if encoding else 0.0,
        "margin": None if witness is None else witness.margin,
        "target": None if witness is None else witness.target,
    }
    if result.found and witness is not None:
        record["x0"] = [float(v) for v in x0]
        record["x_adv"] = [float(v) for v in witness.x]
    return record
