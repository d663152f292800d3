"""Test accuracy of every pruning method against the dense network, over sparsities and seeds.

For each dataset (digits 64-100-100-10 and Fashion-MNIST 784-100-100-10), every registered
method is trained at sparsity 0.5, 0.8, 0.9, 0.95 and 0.98 with three seeds and the same
per-dataset training budget (``prunemip.pruning.methods`` says how each family spends it:
IMP trains every level, the structured methods fine-tune after removing neurons). The script
prints mean ± std of the test accuracy per method and sparsity, the training time per
method, and the goals as PASS/FAIL (never asserted):

* at 90 % sparsity the best unstructured method is within 1.5 points of dense on Fashion-MNIST;
* every method beats random pruning at 95 % sparsity;
* the Fashion-MNIST part takes at most 30 minutes.

Runs go through ``prunemip.pruning.pipeline.run_training`` in a runs directory, so a
re-run (or a crashed run) only trains what is missing; IMP trains one chain of levels per
seed and shares it between all target sparsities. Jobs run in ``--jobs`` processes with
one torch thread each.

    python experiments/benchmarks/pruning_accuracy.py --jobs 2 --out results.json   # ~18 min, 2 idle cores
    python experiments/benchmarks/pruning_accuracy.py --quick                       # 12 s

The measured accuracies and wall times are in ``experiments/benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig
from prunemip.pruning.registry import METHODS

SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
SEEDS = (0, 1, 2)
STRUCTURED = {name for name, spec in METHODS.items() if spec.family == "structured"}


@dataclass(frozen=True)
class Setting:
    """The shared budget of one dataset: architecture, training, method options."""

    dataset: str
    hidden: tuple[int, ...]
    train: TrainConfig
    prune: dict[str, Any]


SETTINGS = {
    "digits": Setting(
        "digits",
        (100, 100),
        TrainConfig(epochs=30, batch_size=64, lr=2e-3),
        {"finetune_epochs": 15, "update_interval": 25},
    ),
    "fashion-mnist": Setting(
        "fashion-mnist",
        (100, 100),
        TrainConfig(epochs=10, batch_size=256, lr=2e-3),
        {"finetune_epochs": 5, "update_interval": 100},
    ),
}
QUICK = Setting(
    "digits",
    (32, 32),
    TrainConfig(epochs=2, batch_size=64, lr=3e-3),
    {"finetune_epochs": 1, "update_interval": 10, "synflow_iterations": 10},
)


def _config(setting: Setting, method: str, sparsity: float, seed: int) -> RunConfig:
    return RunConfig(
        setting.dataset,
        setting.hidden,
        replace(setting.train, seed=seed),
        PruneConfig(method=method, sparsity=sparsity, **setting.prune),
    )


def run_chain(
    setting: Setting, methods: list[str], sparsities: list[float], seed: int, runs: str
) -> list[dict]:
    """Train ``methods`` at every sparsity for one seed, in order (IMP reuses its levels)."""
    import torch

    from prunemip.pruning.pipeline import run_training

    torch.set_num_threads(1)
    rows = []
    for method in methods:
        for sparsity in [0.0] if method == "dense" else sparsities:
            start = time.perf_counter()
            outcome = run_training(_config(setting, method, sparsity, seed), runs)
            report = outcome.summary
            rows.append(
                {
                    "dataset": setting.dataset,
                    "method": method,
                    "sparsity": sparsity,
                    "seed": seed,
                    "accuracy": report.accuracy,
                    "achieved_sparsity": report.sparsity,
                    "seconds": time.perf_counter() - start,
                    "trained_steps": list(report.trained_steps),
                    "exported": outcome.network.architecture,
                    "compression_ratio": report.compression_ratio,
                }
            )
    return rows


def _chains(methods: list[str]) -> list[list[str]]:
    """Job groups: the IMP family in one chain (controls after IMP), every other method alone."""
    imp = [m for m in methods if METHODS[m].family == "imp"]
    imp.sort(key=lambda m: m != "imp")
    return ([imp] if imp else []) + [[m] for m in methods if METHODS[m].family != "imp"]


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def print_table(rows: list[dict], dataset: str, sparsities: list[float], methods: list[str]) -> None:
    print(f"\n### {dataset}: test accuracy % (mean ± std over seeds); train s = per seed, all sparsities")
    header = "| method | " + " | ".join(f"{s:g}" for s in sparsities) + " | train s |"
    print(header)
    print("|" + "---|" * (len(sparsities) + 2))
    for method in methods:
        mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
        if not mine:
            continue
        cells = []
        for sparsity in sparsities:
            mean, std = _stats([100 * a for a in _accuracies(rows, dataset, method, sparsity)])
            cells.append(f"{mean:.2f} ± {std:.2f}")
        seeds = {r["seed"] for r in mine}
        seconds = sum(r["seconds"] for r in mine) / len(seeds)
        print(f"| {method} | " + " | ".join(cells) + f" | {seconds:.1f} |")


def _accuracies(rows: list[dict], dataset: str, method: str, sparsity: float) -> list[float]:
    """Every seed's accuracy of ``method`` at ``sparsity`` (dense: at any sparsity)."""
    return [
        r["accuracy"]
        for r in rows
        if r["dataset"] == dataset
        and r["method"] == method
        and (r["sparsity"] == sparsity or method == "dense")
    ]


def _mean(rows: list[dict], dataset: str, method: str, sparsity: float) -> float | None:
    values = _accuracies(rows, dataset, method, sparsity)
    return statistics.mean(values) if values else None


def _goal_level(sparsities: list[float]) -> float:
    """The sparsity the against-random comparisons are made at: 95 %, else the highest run."""
    return 0.95 if 0.95 in sparsities else max(sparsities)


def goals(
    rows: list[dict],
    datasets: list[str],
    methods: list[str],
    sparsities: list[float],
    seconds: dict[str, float],
) -> list[str]:
    """PASS/FAIL lines (95 % falls back to the highest sparsity run, 90 % must have been run)."""
    lines = []
    unstructured = [m for m in methods if m not in STRUCTURED | {"dense"}]
    if "fashion-mnist" in datasets and 0.9 in sparsities:
        dense = _mean(rows, "fashion-mnist", "dense", 0.0) or 0.0
        best, accuracy = max(
            ((m, _mean(rows, "fashion-mnist", m, 0.9) or 0.0) for m in unstructured), key=lambda item: item[1]
        )
        gap = 100 * (dense - accuracy)
        lines.append(
            f"{'PASS' if gap <= 1.5 else 'FAIL'}: fashion-mnist at 90 %: best unstructured {best} "
            f"{100 * accuracy:.2f} % vs dense {100 * dense:.2f} % (gap {gap:.2f} points, goal <= 1.5)"
        )
    if "fashion-mnist" in seconds:
        minutes = seconds["fashion-mnist"] / 60
        lines.append(
            f"{'PASS' if minutes <= 30 else 'FAIL'}: fashion-mnist wall time {minutes:.1f} min (goal <= 30)"
        )
    level = _goal_level(sparsities)
    for dataset in datasets:
        random = _mean(rows, dataset, "random", level)
        for method in methods:
            accuracy = _mean(rows, dataset, method, level)
            if method in ("dense", "random") or accuracy is None or random is None:
                continue
            lines.append(
                f"{'PASS' if accuracy > random else 'FAIL'}: {dataset} at {level:.0%}: {method} "
                f"{100 * accuracy:.2f} % vs random {100 * random:.2f} %"
            )
    return lines


def structured_controls(
    rows: list[dict], datasets: list[str], methods: list[str], sparsities: list[float]
) -> list[str]:
    """Each structured method against its own random control, ``neuron-random`` (not a goal)."""
    level = _goal_level(sparsities)
    lines = []
    for dataset in datasets:
        control = _mean(rows, dataset, "neuron-random", level)
        for method in sorted(STRUCTURED & set(methods) - {"neuron-random"}):
            accuracy = _mean(rows, dataset, method, level)
            if accuracy is not None and control is not None:
                relation = "above" if accuracy > control else "not above"
                lines.append(
                    f"{dataset} at {level:.0%}: {method} {100 * accuracy:.2f} % is {relation} "
                    f"neuron-random {100 * control:.2f} %"
                )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--sparsities", nargs="+", type=float, default=list(SPARSITIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--runs-dir", default="runs/benchmarks/pruning_accuracy", help="cached runs live here"
    )
    parser.add_argument("--quick", action="store_true", help="tiny digits smoke run (2 seeds, 2 sparsities)")
    parser.add_argument("--out", type=Path, help="write every run as JSON here")
    args = parser.parse_args(argv)
    settings = [QUICK] if args.quick else [SETTINGS[name] for name in args.datasets]
    sparsities = [0.5, 0.9] if args.quick else args.sparsities
    seeds = [0, 1] if args.quick else args.seeds
    methods = ["dense", *(m for m in args.methods if m != "dense")]
    load_before = os.getloadavg()
    rows: list[dict] = []
    seconds: dict[str, float] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else nullcontext() as pool:
        for setting in settings:
            start = time.perf_counter()
            jobs = [
                (setting, chain, sparsities, seed, args.runs_dir)
                for chain in _chains(methods)
                for seed in seeds
            ]
            if pool is None:
                results = [run_chain(*job) for job in jobs]
            else:
                results = [future.result() for future in [pool.submit(run_chain, *job) for job in jobs]]
            rows.extend(row for chain_rows in results for row in chain_rows)
            seconds[setting.dataset] = time.perf_counter() - start
            print(f"{setting.dataset}: {len(jobs)} jobs in {seconds[setting.dataset]:.0f} s", flush=True)
    load_after = os.getloadavg()
    for setting in settings:
        budget = setting.train
        print(
            f"\n{setting.dataset} {setting.hidden}: {budget.epochs} epochs, batch {budget.batch_size}, "
            f"{budget.optimizer} lr {budget.lr:g} {budget.schedule}; method options {setting.prune}"
        )
        print_table(rows, setting.dataset, sparsities, methods)
    print("\nGoals")
    checks = goals(rows, [s.dataset for s in settings], methods, sparsities, seconds)
    for line in checks:
        print(line)
    controls = structured_controls(rows, [s.dataset for s in settings], methods, sparsities)
    if controls:
        print("\nStructured methods against their random control")
        print("\n".join(controls))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {args.jobs} jobs")
    load = [load_before, load_after]
    results = {"rows": rows, "seconds": seconds, "goals": checks, "controls": controls, "load": load}
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
