"""The automatic search's cost and its proxy's calibration: wall time, the choice, Spearman's ρ.

Runs :func:`prunemip.study.auto.search` on one dataset and architecture with a study's
training budget (20 epochs, 10 fine-tuning epochs in the last round, batch 128, Adam 1e-3,
constant learning rate) and prints its candidates, its choice and its wall time. Then, with
``--calibrate N``, it picks N of the evaluated networks spread over the proxy's range (the
dense one included), solves decide-mode MIPs on validation images for each attack ball
(:func:`prunemip.study.calibration.calibrate`) and prints every proxy form's rank correlation
with the measured times. ``--export DIR`` writes those networks and the validation images
instead of solving, so that ``--from DIR`` calibrates on another machine (without the dataset
or the search).

    python experiments/benchmarks/auto_search.py --dataset digits --arch 2x50 --calibrate 8
    python experiments/benchmarks/auto_search.py --dataset fashion-mnist --arch 2x200 \\
        --calibrate 8 --export runs/auto-calibration-fashion        # then, elsewhere:
    python experiments/benchmarks/auto_search.py --from runs/auto-calibration-fashion --workers 16

The measured figures are in ``experiments/benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from prunemip.data import Dataset
from prunemip.model_io import load_network, save_network
from prunemip.network import Network
from prunemip.study.calibration import calibrate
from prunemip.study.mip_cost import DEFAULT_BALLS, PROXY_FORMS


def _search(args: argparse.Namespace, console: Console) -> tuple[dict[str, Network], Dataset, dict[str, Any]]:
    """Run the search; return N of its networks spread over the proxy's range, the validation part."""
    import torch

    from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig, parse_arch
    from prunemip.study.auto import SearchData, search
    from prunemip.study.auto_report import candidates_table
    from prunemip.study.search_space import SearchSpace

    torch.set_num_threads(args.threads)
    train = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, schedule="none")
    config = RunConfig(args.dataset, parse_arch(args.arch), train, PruneConfig(finetune_epochs=args.finetune))
    started = time.perf_counter()
    result = search(config, args.budget, args.runs, console=console)
    wall = time.perf_counter() - started
    console.print(candidates_table(result))
    console.print(
        f"chosen {result.chosen.candidate.label}; {len(result.evaluations) - 1} candidates; rounds "
        f"{result.rounds}; wall time {wall:.0f} s; steps trained {len(result.trained_steps)}"
    )
    order = sorted(range(len(result.evaluations)), key=lambda i: result.evaluations[i].proxy)
    picks = sorted({order[round(k)] for k in np.linspace(0, len(order) - 1, args.calibrate)} | {0})
    networks = {result.evaluations[i].candidate.label: result.networks[i] for i in picks}
    summary = {"wall_seconds": wall, "chosen": result.chosen.candidate.label, "rows": result.rows()}
    return networks, SearchData.load(config, SearchSpace().val_fraction).val, summary


def _export(folder: Path, networks: dict[str, Network], val: Dataset) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for index, (label, network) in enumerate(networks.items()):
        save_network(network, folder / f"network-{index}.npz")
        names[f"network-{index}.npz"] = label
    (folder / "networks.json").write_text(json.dumps(names, indent=2))
    np.savez_compressed(
        folder / "val.npz", images=val.images, labels=val.labels, classes=np.array(val.classes)
    )


def _imported(folder: Path) -> tuple[dict[str, Network], Dataset]:
    names = json.loads((folder / "networks.json").read_text())
    networks = {label: load_network(folder / name) for name, label in names.items()}
    arrays = np.load(folder / "val.npz")
    classes = tuple(str(c) for c in arrays["classes"])
    images = arrays["images"]
    val = Dataset("val", images, arrays["labels"], images.shape[1:], classes, "val", {})
    return networks, val


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--arch", default="2x50")
    parser.add_argument("--budget", type=float, default=1.0, help="accuracy budget, points (1.0)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune", type=int, default=10, help="last round's fine-tuning epochs (10)")
    parser.add_argument("--runs", default="runs/auto-bench", help="runs directory (runs/auto-bench)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--calibrate", type=int, default=0, help="networks to calibrate on (0: none)")
    parser.add_argument("--images", type=int, default=5, help="validation images solved per ball (5)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (60)")
    parser.add_argument("--workers", type=int, default=1, help="solves at once (1)")
    parser.add_argument(
        "--export", type=Path, help="write the calibration networks and validation images here"
    )
    parser.add_argument("--from", dest="source", type=Path, help="calibrate the networks exported here")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    console = Console(width=None if Console().is_terminal else 150)
    summary: dict[str, Any] = {}
    if args.source is not None:
        networks, val = _imported(args.source)
    else:
        networks, val, summary = _search(args, console)
        if args.export is not None:
            _export(args.export, networks, val)
            console.print(f"exported {len(networks)} networks and the validation images to {args.export}")
    if (args.calibrate and args.export is None) or args.source is not None:
        started = time.perf_counter()
        result = calibrate(
            networks,
            val,
            DEFAULT_BALLS,
            images=args.images,
            time_limit=args.time_limit,
            workers=args.workers,
            on_solve=lambda name, r: console.print(f"  {name}: {r['status']} {r['seconds']:.2f} s"),
        )
        for row in sorted(result.rows, key=lambda r: r.seconds):
            proxies = ", ".join(f"{form} {row.features.value(form):.4g}" for form in PROXY_FORMS)
            console.print(f"{row.name:<30} {row.seconds:8.2f} s ({row.timeouts} time-outs): {proxies}")
        rhos = ", ".join(f"{form} {rho:.3f}" for form, rho in result.correlations.items())
        console.print(
            f"Spearman rho: {rhos}; best {result.best}; images {list(result.images)}; "
            f"{time.perf_counter() - started:.0f} s"
        )
        summary["calibration"] = result.to_dict()
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
