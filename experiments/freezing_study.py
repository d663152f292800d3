"""Pruning vs freezing at one trainable-parameter budget: which one shrinks the MIP?

Pruning and freezing are the two forms of dimensionality-reduced training (Wimmer,
Mehnert & Condurache, Artificial Intelligence Review 2023). This script trains digits
MLPs through ``prunemip``'s pipeline — dense; 90 % of the hidden-layer weights pruned
(SNIP, and random); 90 % frozen at their initial values (random, and FreezeNet's SNIP
choice); 45 % pruned + 45 % frozen; the first layer frozen whole — so every sparse
variant trains the same 10 % of the hidden-layer weights, plus biases and the output
layer. For each network it reports accuracy, training time, trainable / frozen / zero
parameters, the share of weight gradients saved, and the size (nnz, binaries) and
HiGHS solve time of the untargeted L∞ adversarial MIP on the same test images.

The attack runs in decide mode without the gradient pre-attack (so the MIP decides
every image), with linear-relaxation bounds, one HiGHS thread and seed 0; training uses
one torch thread. A standalone script rather than a study TOML: the study runner prunes
post-training methods such as SNIP from the trained dense model, whereas freezing must
act at initialisation, and its tables have no training-time or gradient columns.

Run (about 10 minutes on 2 shared cores with the defaults)::

    python experiments/freezing_study.py --out freezing.json
    python experiments/freezing_study.py --hidden 100 100 --epochs 30 --images 10 --eps 0.05 0.1 \\
        --time-limit 30 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunemip.data import Dataset, load_dataset
from prunemip.engine.attack import AttackOptions, find_adversarial_example
from prunemip.network import Network
from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig
from prunemip.pruning.pipeline import Outcome, run_training
from prunemip.solvers.highs import HighsOptions
from prunemip.study.demo import attack_images
from prunemip.study.report import SOLVED, shifted_geometric_mean

#: Name → PruneConfig fields; the sparse variants train 10 % of the hidden-layer weights.
VARIANTS: dict[str, dict[str, Any]] = {
    "dense": {},
    "pruned 90% snip": {"method": "snip", "sparsity": 0.9},
    "pruned 90% random": {"method": "random", "sparsity": 0.9},
    "frozen 90% random": {"freeze": "random", "freeze_fraction": 0.9},
    "frozen 90% snip (FreezeNet)": {"freeze": "snip", "freeze_fraction": 0.9},
    "pruned 45% + frozen 45% snip": {
        "method": "snip",
        "sparsity": 0.45,
        "freeze": "snip",
        "freeze_fraction": 0.45,
    },
    "frozen layer 1": {"freeze_layers": (1,)},
}


def train_variants(args: argparse.Namespace) -> dict[str, tuple[Outcome, float]]:
    """Every variant trained from scratch ``args.repeats`` times (same seed, data and schedule,
    a fresh run directory each time, after one warm-up run); the outcome and the median
    seconds of the whole run (scoring, freezing, training, export)."""
    train = TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="prunemip-freezing-") as warm_up:
        run_training(RunConfig("digits", tuple(args.hidden), replace(train, epochs=1)), warm_up)
    trained = {}
    for name, fields in VARIANTS.items():
        config = RunConfig("digits", tuple(args.hidden), train, PruneConfig(**fields))
        times = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="prunemip-freezing-") as runs_dir:
                start = time.perf_counter()
                outcome = run_training(config, runs_dir)
                times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        print(f"trained {name}: accuracy {outcome.summary.accuracy:.3f}, median {seconds:.2f} s", flush=True)
        trained[name] = (outcome, seconds)
    return trained


def attack(network: Network, test: Dataset, images: list[int], eps: float, limit: float) -> list[dict]:
    """The untargeted decide-mode L∞ MIP on each image; one row per image."""
    options = AttackOptions(
        mode="decide",
        bounds="linear",
        highs=HighsOptions(time_limit=limit, threads=1, random_seed=0),
        pgd=False,
    )
    rows = []
    for index in images:
        result = find_adversarial_example(
            network,
            test.flat()[index],
            int(test.labels[index]),
            norm="linf",
            radius=eps,
            options=options,
        )
        encoding = result.encoding
        rows.append(
            {
                "image": index,
                "status": result.status,
                "solve_seconds": result.solve_seconds,
                "total_seconds": result.total_seconds,
                "mip_nnz": encoding.nonzeros if encoding else 0,
                "binaries": encoding.binaries if encoding else 0,
            }
        )
    return rows


def training_row(name: str, outcome: Outcome, seconds: float) -> dict[str, Any]:
    report = outcome.summary
    return {
        "network": name,
        "accuracy": report.accuracy,
        "train_seconds": seconds,
        **report.parameter_totals(),
        "weight_gradients_saved": report.gradient_saving,
        "weights_nnz": outcome.network.nnz,
    }


def mip_row(name: str, eps: float, rows: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """Mean MIP size and shifted geometric means of the times (undecided counted at the limit)."""

    def sgm(key: str) -> float:
        return shifted_geometric_mean([r[key] if r["status"] in SOLVED else limit for r in rows])

    return {
        "network": name,
        "eps": eps,
        "mip_nnz": float(np.mean([r["mip_nnz"] for r in rows])),
        "binaries": float(np.mean([r["binaries"] for r in rows])),
        "decided": sum(r["status"] in SOLVED for r in rows),
        "adversarial": sum(r["status"] == "adversarial" for r in rows),
        "images": len(rows),
        "sgm_solve_seconds": sgm("solve_seconds"),
        "sgm_total_seconds": sgm("total_seconds"),
    }


def markdown(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """A Markdown table of ``rows``: header → format of ``row[key]`` (``{key:spec}``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(spec.format(**row) for spec in columns.values()) + " |" for row in rows]
    return "\n".join(lines)


TRAINING_COLUMNS = {
    "network": "{network}",
    "accuracy": "{accuracy:.3f}",
    "train s": "{train_seconds:.2f}",
    "trainable": "{trainable}",
    "frozen": "{frozen}",
    "zero": "{zero}",
    "weight grads saved": "{weight_gradients_saved:.1%}",
    "weight nnz": "{weights_nnz}",
}
MIP_COLUMNS = {
    "network": "{network}",
    "MIP nnz": "{mip_nnz:.0f}",
    "binaries": "{binaries:.1f}",
    "decided (adversarial)": "{decided}/{images} ({adversarial})",
    "MIP solve sgm s": "{sgm_solve_seconds:.2f}",
    "attack sgm s": "{sgm_total_seconds:.2f}",
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="training runs per variant (median time)")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1])
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per attack")
    parser.add_argument("--out", type=Path, help="write every attack and the tables as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    trained = train_variants(args)
    test = load_dataset("digits", "test")
    images = attack_images(test, [outcome.network for outcome, _ in trained.values()], args.images)
    training = [training_row(name, outcome, seconds) for name, (outcome, seconds) in trained.items()]
    mips, runs = [], []
    for eps in args.eps:
        for name, (outcome, _) in trained.items():
            rows = attack(outcome.network, test, images, eps, args.time_limit)
            runs += [{"network": name, "eps": eps, **row} for row in rows]
            mips.append(mip_row(name, eps, rows, args.time_limit))
            print(f"attacked {name} at ε={eps:g}: {mips[-1]['decided']}/{len(images)} decided", flush=True)
    architecture = "-".join(map(str, [64, *args.hidden, 10]))
    print(
        f"\ndigits {architecture}, {args.epochs} epochs, Adam lr {args.lr:g}, median of {args.repeats} "
        f"trainings; untargeted L∞ attacks in decide mode, linear bounds, no PGD, time limit "
        f"{args.time_limit:g} s, test images {images}; load average {os.getloadavg()[0]:.2f}; "
        f"{time.perf_counter() - started:.0f} s in all\n"
    )
    print(markdown(training, TRAINING_COLUMNS))
    for eps in args.eps:
        print(f"\nε = {eps:g}\n")
        print(markdown([row for row in mips if row["eps"] == eps], MIP_COLUMNS))
    result = {
        "args": {**vars(args), "out": str(args.out)},
        "images": images,
        "training": training,
        "mip": mips,
        "runs": runs,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
