"""``prunemip demo``: dense vs 90 %-sparse on the embedded digits data, end to end.

Trains a small MLP on scikit-learn's 8×8 digits, makes a sparse copy by global magnitude
pruning plus masked fine-tuning (both through the pruning pipeline, as ``prunemip train``
and ``prunemip prune`` do), attacks the same test images on both with HiGHS, and reports
accuracy, MIP size and solve effort side by side.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from prunemip.data import Dataset, load_dataset
from prunemip.engine.attack import AttackOptions, AttackResult, find_adversarial_example
from prunemip.network import Network
from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig
from prunemip.pruning.pipeline import prune_network, run_training
from prunemip.solvers.highs import HighsOptions


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and attacks.

    The demo measures the MIP itself, so by default its attacks use interval bounds and no
    gradient attack first (``prunemip attack`` runs the full pipeline: on these small
    networks its gradient attack and linear bounds settle almost every image before a MIP).
    Its verdicts do not depend on the machine's speed: HiGHS stops a MIP after
    ``node_limit`` branch-and-bound nodes (HiGHS's ``mip_max_nodes``, a count, the same on
    any machine), and ``time_limit`` is a backstop far above what the default attacks take.
    ``runs_dir`` keeps the training runs' directories (default: a temporary folder, removed
    at the end).
    """

    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 40
    finetune_epochs: int = 20
    lr: float = 3e-3
    sparsity: float = 0.9
    images: int = 10
    norm: str = "linf"
    radius: float = 0.05
    mode: str = "decide"
    time_limit: float = 600.0
    node_limit: int | None = 500
    seed: int = 0
    device: str = "cpu"
    bounds: str = "ia"
    gradient_attack: bool = False
    runs_dir: str | Path | None = None


@dataclass
class ModelReport:
    """One row of the demo table: a network, its accuracy and its attacks."""

    name: str
    network: Network
    accuracy: float
    attacks: list[AttackResult] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        encodings = [a.encoding for a in self.attacks if a.encoding is not None]
        statuses = [a.status for a in self.attacks]
        return {
            "model": self.name,
            "accuracy": self.accuracy,
            "nnz": self.network.nnz,
            "unstable": float(np.mean([e.unstable_neurons for e in encodings])) if encodings else 0.0,
            "binaries": float(np.mean([e.binaries for e in encodings])) if encodings else 0.0,
            "build_s": sum(e.bounds_seconds + e.build_seconds for e in encodings),
            "solve_s": sum(a.solve_seconds for a in self.attacks),
            "nodes": sum(a.nodes for a in self.attacks),
            "adversarial": statuses.count("adversarial"),
            "robust": statuses.count("robust"),
            "timeout": statuses.count("timeout") + statuses.count("unknown"),
            "found": sum(a.found for a in self.attacks),
            "images": len(self.attacks),
        }


Log = Callable[[str], None]


def attack_images(test: Dataset, networks: list[Network], count: int) -> list[int]:
    """The first ``count`` test images every network classifies correctly.

    Args:
        test: the test split.
        networks: the networks that must all classify an image correctly.
        count: how many images at most.

    Returns:
        Their indices in ``test``, ascending.
    """
    flat = test.flat()
    correct = np.ones(len(test), dtype=bool)
    for network in networks:
        correct &= network.predict(flat) == test.labels
    return [int(i) for i in np.flatnonzero(correct)[:count]]


def train_dense_and_pruned(config: DemoConfig, log: Log = print) -> tuple[list[ModelReport], Dataset]:
    """Train the dense MLP, prune a copy by global magnitude and fine-tune it.

    Both models come from the pruning pipeline, as with ``prunemip train`` and
    ``prunemip prune``: :func:`~prunemip.pruning.pipeline.run_training` (method ``dense``),
    then :func:`~prunemip.pruning.pipeline.prune_network` (method ``magnitude``, which ranks
    a trained model's weights globally) with the masks fixed while fine-tuning.

    Args:
        config: the architecture, training budget, sparsity, seed, device and runs folder.
        log: receives one line per trained model.

    Returns:
        Both models' reports (without attacks) and the test split.
    """
    train = TrainConfig(
        epochs=config.epochs,
        batch_size=64,
        lr=config.lr,
        schedule="none",
        seed=config.seed,
        device=config.device,
    )
    dense_config = RunConfig(dataset="digits", hidden=config.hidden, train=train, data_seed=config.seed)
    prune = PruneConfig(method="magnitude", sparsity=config.sparsity, finetune_epochs=config.finetune_epochs)
    with _runs_dir(config) as runs:
        start = time.perf_counter()
        dense = run_training(dense_config, runs)
        log(
            f"trained dense {dense.network.architecture} in {time.perf_counter() - start:.1f} s: "
            f"accuracy {dense.summary.accuracy:.3f}"
        )
        start = time.perf_counter()
        sparse = prune_network(dense.network, replace(dense_config, prune=prune), runs)
        log(
            f"pruned to {sparse.network.sparsity:.0%} sparsity (hidden layers {config.sparsity:.0%}) and "
            f"fine-tuned in {time.perf_counter() - start:.1f} s: accuracy {sparse.summary.accuracy:.3f}"
        )
    reports = [
        ModelReport("dense", dense.network, dense.summary.accuracy),
        ModelReport(f"pruned {config.sparsity:.0%}", sparse.network, sparse.summary.accuracy),
    ]
    return reports, load_dataset("digits", "test", seed=config.seed)


def _runs_dir(config: DemoConfig) -> contextlib.AbstractContextManager[str | Path]:
    """``config.runs_dir``, or a temporary folder removed on exit."""
    if config.runs_dir is None:
        return tempfile.TemporaryDirectory(prefix="prunemip-demo-")
    return contextlib.nullcontext(config.runs_dir)


def run_demo(config: DemoConfig, log: Log = print) -> list[ModelReport]:
    """Train, prune, attack; returns the dense and the sparse model's reports.

    Args:
        config: what the demo trains and attacks.
        log: receives one line per trained model and per attack.

    Returns:
        The dense model's report, then the pruned one's, each with its attacks.
    """
    reports, test_data = train_dense_and_pruned(config, log)
    images = attack_images(test_data, [report.network for report in reports], config.images)
    options = AttackOptions(
        mode=config.mode,
        bounds=config.bounds,
        highs=HighsOptions(
            time_limit=config.time_limit,
            random_seed=config.seed,
            extra={} if config.node_limit is None else {"mip_max_nodes": config.node_limit},
        ),
        pgd=config.gradient_attack,
        bab=False,  # the demo measures the MIP: no branch and bound beside it
    )
    norm_name = "L∞" if config.norm == "linf" else "L1"
    first = "gradient attack, then " if config.gradient_attack else ""
    log(
        f"attacking {len(images)} test images ({norm_name} radius {config.radius}, {config.mode} mode; "
        f"{first}{config.bounds} bounds and the MIP)"
    )
    for index in images:
        x0, label = test_data.flat()[index], int(test_data.labels[index])
        for report in reports:
            result = find_adversarial_example(
                report.network,
                x0,
                label,
                norm=config.norm,
                radius=config.radius,
                options=options,
            )
            report.attacks.append(result)
            log(
                f"  image {index} (label {label}) {report.name}: {result.status} "
                f"in {result.total_seconds:.2f} s, {result.nodes} nodes"
            )
    return reports
