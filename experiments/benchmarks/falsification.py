"""Falsification alone: how many counterexamples it finds, and how fast, in this tree or an older one.

Two sets of instances, each searched by falsification only (no bounds, no MIP):

* ``mnist``: the MNIST-256 nets and properties of ``vnncomp_mnist.py`` (2, 4 and 6 hidden layers
  of 256 ReLUs, cached as ``mnist_{depth}x256.onnx`` by that script; the box ``[x0 − ε, x0 + ε] ∩
  [0, 1]``, one disjunct ``Y_j ≥ Y_label`` per other class), searched as ``verify`` does before its
  bounds: within a tenth of the quarter limit (30 s for 2 layers, 75 s for 4 and 6);
* ``digits``: the digits nets of ``bounds.py`` (``bench_nets.py``: 2x100, 2x200, 3x100, dense and
  90 % sparse), the first correctly classified test images, L∞ 0.02 and 0.05 and L1 5, searched as
  ``attack`` does before its MIP (every target, runner-up first).

The same script runs against an older tree, whose falsification it calls the way that tree's
``verify`` and ``attack`` did (random points then signed-gradient ascent per disjunct; the numpy
PGD of ``pgd_attack``); e.g. with a worktree of the previous commit::

    git worktree add /tmp/old <commit>
    ln -s /tmp/old/encoders /tmp/old/prunemip/encoders; ln -s /tmp/old/solvers /tmp/old/prunemip/solvers
    PYTHONPATH=/tmp/old python experiments/benchmarks/falsification.py --data-dir ../shared/data/mnist
    python experiments/benchmarks/falsification.py --data-dir ../shared/data/mnist

Times are wall clock and process CPU time (torch on one thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_nets import build_pair

import prunemip.engine.falsify as falsify_module
from prunemip.data import load_dataset
from prunemip.engine.attack import target_order
from prunemip.model_io import load_network
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import HighsOptions
from prunemip.vnnlib import Property, parse_vnnlib

#: Whether this tree has the batched falsifier (else it is the older tree).
NEW = hasattr(falsify_module, "falsify")
FALSIFY_SHARE = 0.1  #: as verify's FALSIFY_SHARE: the tenth of the limit that falsification may spend


def robustness_property(x0: np.ndarray, label: int, eps: float, n_classes: int) -> Property:
    """VNN-COMP's ``mnist_fc`` property: the box ``x0 ± eps`` in [0, 1], ``Y_j ≥ Y_label`` for some ``j``."""
    lines = [f"(declare-const X_{i} Real)" for i in range(x0.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_classes)]
    for i, value in enumerate(x0):
        lines.append(f"(assert (<= X_{i} {float(min(1.0, value + eps))!r}))")
        lines.append(f"(assert (>= X_{i} {float(max(0.0, value - eps))!r}))")
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_classes) if j != label)
    lines.append(f"(assert (or {others}))")
    return parse_vnnlib("\n".join(lines) + "\n")


def verify_falsification(network: Network, prop: Property, budget: float, precision: str) -> str:
    """Verify's falsification within ``budget`` seconds: the stage that found a counterexample, or ""."""
    from prunemip.engine import verify

    deadline = time.perf_counter() + budget
    if NEW:  # verify's falsification: one batch per input box, the boxes sharing the budget
        from prunemip.engine.spec import property_specs

        effort = replace(verify.VerifyOptions().falsify, precision=precision)
        groups = property_specs(prop)
        for index, (spec, _) in enumerate(groups):
            share = (deadline - time.perf_counter()) / (len(groups) - index)
            rows = list(spec.disjuncts)
            result = falsify_module.falsify(
                network, spec.region, rows, effort, deadline=time.perf_counter() + share
            )
            if result.found is not None:
                point = result.points[result.found]
                assert prop.satisfied_by(point, network.forward(point))
                return "gradient" if result.moved else "random"
        return ""
    # The older tree: random points, then gradient ascent, disjunct by disjunct.
    search = verify._Search(network, prop, deadline, HighsOptions(threads=1), np.random.default_rng(0))
    found = any(search.falsify(d) for d in prop.disjuncts)
    by_gradient = not found and any(map(search.falsify_by_gradient, prop.disjuncts))
    stage = "random" if found else "gradient" if by_gradient else ""
    if stage:
        assert search.found is not None and prop.satisfied_by(*search.found)
    return stage


def attack_falsification(
    network: Network, region: InputRegion, x0: np.ndarray, label: int, precision: str
) -> float:
    """The attack's gradient attack with its default effort: the best forward-pass margin found."""
    targets = target_order(network.forward(x0), label)
    if NEW:
        from prunemip.engine.spec import margin_rows

        margins = [margin_rows(network.n_outputs, label, t) for t in targets]
        effort = falsify_module.FalsifyOptions(precision=precision)
        result = falsify_module.falsify(network, region, margins, effort, starts=[x0])
        return float(np.max(result.slacks))
    return falsify_module.pgd_attack(network, region, label, targets).best_margin


def timed(function, *args) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = function(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def run_mnist(args: argparse.Namespace) -> list[dict]:
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    rows = []
    for depth in args.depths:
        network = load_network(args.nets / f"mnist_{depth}x256.onnx")
        budget = FALSIFY_SHARE * (30.0 if depth <= 2 else 75.0)
        for eps in (0.03, 0.05):
            for index in range(args.images):
                prop = robustness_property(test.flat()[index], int(test.labels[index]), eps, 10)
                stage, wall, cpu = timed(verify_falsification, network, prop, budget, args.precision)
                rows.append(
                    {
                        "net": f"{depth}x256",
                        "eps": eps,
                        "image": index,
                        "stage": stage,
                        "wall": wall,
                        "cpu": cpu,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def run_digits(args: argparse.Namespace) -> list[dict]:
    test = load_dataset("digits", "test", seed=0)
    flat = test.flat()
    rows = []
    for arch in ("2x100", "2x200", "3x100"):
        for kind, network in build_pair("digits", arch).items():
            correct = np.flatnonzero(network.predict(flat) == test.labels)[: args.images]
            for norm, radius in (("linf", 0.02), ("linf", 0.05), ("l1", 5.0)):
                for index in correct:
                    x0, label = flat[index], int(test.labels[index])
                    region = InputRegion.ball(norm, x0, radius, 0.0, 1.0)
                    margin, wall, cpu = timed(
                        attack_falsification, network, region, x0, label, args.precision
                    )
                    instance = {"net": f"{arch}-{kind}", "region": f"{norm}:{radius:g}", "image": int(index)}
                    rows.append(
                        {**instance, "found": margin > 0.0, "margin": margin, "wall": wall, "cpu": cpu}
                    )
    for region in ("linf:0.02", "linf:0.05", "l1:5"):
        group = [r for r in rows if r["region"] == region]
        print(
            f"digits {region}: found {sum(r['found'] for r in group)} of {len(group)}, "
            f"{sum(r['wall'] for r in group):.2f} s wall, {sum(r['cpu'] for r in group):.2f} s CPU in all"
        )
    return rows


def summary(rows: list[dict]) -> None:
    for net in dict.fromkeys(r["net"] for r in rows):
        for eps in (0.03, 0.05):
            group = [r for r in rows if r["net"] == net and r["eps"] == eps]
            found = [r for r in group if r["stage"]]
            to_find = f"{np.mean([r['wall'] for r in found]):.2f} s" if found else "-"
            wall, cpu = sum(r["wall"] for r in group), sum(r["cpu"] for r in group)
            print(
                f"mnist {net} eps {eps:g}: found {len(found)} of {len(group)}, mean time to find {to_find}, "
                f"{wall:.1f} s wall / {cpu:.1f} s CPU in all"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("mnist", "digits", "all"), default="all")
    parser.add_argument(
        "--nets", type=Path, default=Path("runs/vnncomp"), help="folder of mnist_{d}x256.onnx"
    )
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--images", type=int, default=15, help="images per net and radius (15)")
    parser.add_argument(
        "--precision", choices=("float32", "float64"), default="float32", help="new tree only"
    )
    parser.add_argument("--out", type=Path, help="write the rows here (JSON)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"falsifier: {f'batched APGD (torch, {args.precision})' if NEW else 'previous (numpy)'}", flush=True
    )
    rows = {}
    if args.part in ("mnist", "all"):
        rows["mnist"] = run_mnist(args)
        summary(rows["mnist"])
    if args.part in ("digits", "all"):
        rows["digits"] = run_digits(args)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
