"""Which big-M formulation does HiGHS solve faster: ẑ substituted, or ẑ as a column?

``substituted`` writes each unstable neuron's weights into both rows ``y ≥ ẑ`` and
``y ≤ ẑ − l(1 − δ)``; ``variable`` adds a column ``ẑ`` with one defining equality, so
every weight appears once (nnz ≈ surviving weights + O(neurons)). This script trains
digits MLPs (dense and globally magnitude-pruned, as ``prunemip demo`` does), attacks
the same test images with both formulations and HiGHS seeds, and prints per setting the
number solved, the shifted geometric mean of the attack time (shift 1 s, time-outs
counted at the limit) and the median per-instance ratio.

Run (about 10 minutes on 2 cores with the defaults)::

    python experiments/benchmarks/formulation.py
    python experiments/benchmarks/formulation.py --hidden 100 100 --eps 0.05 0.1 --images 10 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from prunemip.data import Dataset
from prunemip.engine.attack import AttackOptions, find_adversarial_example
from prunemip.network import Network
from prunemip.solvers.highs import HighsOptions
from prunemip.study.demo import DemoConfig, train_dense_and_pruned
from prunemip.study.report import shifted_geometric_mean

FORMULATIONS = ("substituted", "variable")


def networks(hidden: tuple[int, ...], sparsity: float, seed: int) -> tuple[dict[str, Network], Dataset]:
    """The demo's dense and pruned digits MLPs, keyed by name, and the test split."""
    config = DemoConfig(hidden=hidden, sparsity=sparsity, seed=seed)
    reports, test_data = train_dense_and_pruned(config, log=lambda line: print(line, flush=True))
    return {report.name: report.network for report in reports}, test_data


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="HiGHS random seeds")
    parser.add_argument("--mode", choices=("decide", "optimize"), default="decide")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--out", type=Path, help="write every run as JSON here")
    args = parser.parse_args(argv)

    nets, test_data = networks(tuple(args.hidden), args.sparsity, seed=0)
    flat = test_data.flat()
    runs = []
    for name, network in nets.items():
        images = [i for i in range(len(test_data)) if network.predict(flat[i]) == test_data.labels[i]][
            : args.images
        ]
        for eps in args.eps:
            for index in images:
                for seed in args.seeds:
                    for formulation in FORMULATIONS:
                        result = find_adversarial_example(
                            network,
                            flat[index],
                            int(test_data.labels[index]),
                            norm="linf",
                            radius=eps,
                            options=AttackOptions(
                                mode=args.mode,
                                formulation=formulation,
                                highs=HighsOptions(time_limit=args.time_limit, random_seed=seed),
                            ),
                        )
                        decided = result.status in ("adversarial", "robust")
                        runs.append(
                            {
                                "net": name,
                                "eps": eps,
                                "image": index,
                                "seed": seed,
                                "formulation": formulation,
                                "status": result.status,
                                "seconds": result.total_seconds if decided else args.time_limit,
                                "nodes": result.nodes,
                                "nnz": result.encoding.nonzeros if result.encoding else 0,
                            }
                        )
            print(f"  {name} eps={eps}: {len(images) * len(args.seeds)} instances done", flush=True)

    print(f"\n{args.mode} mode, L∞, time limit {args.time_limit:g} s, HiGHS seeds {args.seeds}")
    print(
        f"{'net':>12} {'eps':>5} {'formulation':>12} {'solved':>7} {'sgm s':>8} {'nnz':>7} "
        f"{'median var/subst':>17}"
    )
    summary = []
    for name in nets:
        for eps in args.eps:
            by_formulation = {
                f: [r for r in runs if r["net"] == name and r["eps"] == eps and r["formulation"] == f]
                for f in FORMULATIONS
            }
            ratios = [
                (v["seconds"] + 0.01) / (s["seconds"] + 0.01)
                for s, v in zip(by_formulation["substituted"], by_formulation["variable"], strict=True)
            ]
            for formulation, rows in by_formulation.items():
                solved = sum(r["status"] in ("adversarial", "robust") for r in rows)
                sgm = shifted_geometric_mean([r["seconds"] for r in rows])
                nnz = int(statistics.median(r["nnz"] for r in rows))
                ratio = f"{statistics.median(ratios):.2f}" if formulation == "variable" else ""
                print(
                    f"{name:>12} {eps:>5g} {formulation:>12} {solved:>3}/{len(rows):<3} {sgm:>8.3f} "
                    f"{nnz:>7} {ratio:>17}"
                )
                summary.append(
                    {
                        "net": name,
                        "eps": eps,
                        "formulation": formulation,
                        "solved": solved,
                        "instances": len(rows),
                        "sgm_seconds": sgm,
                        "median_nnz": nnz,
                    }
                )
    overall = {
        f: shifted_geometric_mean([r["seconds"] for r in runs if r["formulation"] == f]) for f in FORMULATIONS
    }
    print("overall sgm: " + ", ".join(f"{f} {s:.3f} s" for f, s in overall.items()))
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "summary": summary, "overall": overall}, indent=1))
    return {"runs": runs, "summary": summary, "overall": overall}


if __name__ == "__main__":
    main(sys.argv[1:])
