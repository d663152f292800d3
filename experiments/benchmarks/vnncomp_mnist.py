"""A VNN-COMP-style MNIST fully connected benchmark, built and solved by prunemip.

Like VNN-COMP's ``mnist_fc``: MLPs with 2, 4 and 6 hidden layers of 256 ReLUs (trained here
on the MNIST split prunemip has: the official test split re-split 8,000 / 2,000), exported
to ONNX; for each, 15 test images and L∞ ε ∈ {0.03, 0.05}: the property is the box
``[x0 − ε, x0 + ε] ∩ [0, 1]`` with the counterexample condition "some other class's logit
is ≥ the true class's" (one disjunct per class). Time limits: 120 s (2 layers), 300 s (4, 6).

Every instance is run through ``prunemip verify``'s engine with and without the pruned
surrogate (``--no-surrogate``: without only), with branch and bound racing the MIP and without
it (``--bab on off``, ``VerifyOptions.bab``; default on only), in ``--workers`` processes.
Wrong answers are checked two ways: every ``sat`` witness is re-run through the ONNX-loaded
network's forward pass against the property, and every ``unsat`` on the 2-layer network is
cross-checked by prunemip's adversarial search (a different MIP: the margin objective per
target, optimize mode), which must not find an example.

    python experiments/benchmarks/vnncomp_mnist.py --data-dir ../shared/data/mnist            # the full set
    python experiments/benchmarks/vnncomp_mnist.py --data-dir ../shared/data/mnist --quick    # minutes
    python experiments/benchmarks/vnncomp_mnist.py --data-dir ../shared/data/mnist \
        --timeout-scale 0.25 --no-surrogate --bab on off --workers 8   # with and without BaB
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunemip.data import load_dataset
from prunemip.engine.attack import AttackOptions, find_adversarial_example
from prunemip.engine.verify import VerifyOptions, verify
from prunemip.model_io import load_network
from prunemip.solvers.highs import HighsOptions
from prunemip.vnnlib import load_vnnlib, robustness_vnnlib


def train_and_export(depth: int, width: int, epochs: int, folder: Path, data_dir: str | None) -> Path:
    """Train a depth×width MLP on the MNIST split and export it to ONNX (cached)."""
    import torch

    from prunemip.pruning.training import TrainConfig, accuracy, build_mlp, train

    path = folder / f"mnist_{depth}x{width}.onnx"
    if path.exists():
        return path
    train_data = load_dataset("mnist", "train", data_dir=data_dir)
    test_data = load_dataset("mnist", "test", data_dir=data_dir)
    torch.manual_seed(0)
    model = build_mlp(784, (width,) * depth, 10)
    train(model, train_data, TrainConfig(epochs=epochs, lr=1e-3, batch_size=128, schedule="none"))
    print(f"{depth}x{width}: test accuracy {accuracy(model, test_data):.3f}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, 784),), str(path), dynamo=False)
    return path


@dataclass(frozen=True)
class Instance:
    """One run: a property (a network, an image and ε) and the verify configuration to run it with."""

    onnx: Path
    depth: int
    width: int
    eps: float
    index: int
    x0: np.ndarray
    label: int
    limit: float
    surrogate: float | None  #: the pruned surrogate's sparsity
    bab: bool  #: branch and bound racing the MIP
    out: Path


def run_instance(instance: Instance) -> dict:
    """Verify one instance under its configuration; check the verdict."""
    network = load_network(instance.onnx)
    # The ONNX file carries no input range: the cross-check must search the property's
    # box, the ε-ball intersected with the pixel range [0, 1].
    pixels = network.with_input_spec(network.input_spec.with_range(0.0, 1.0))
    name = f"mnist_{instance.depth}x{instance.width}_img{instance.index}_eps{instance.eps:g}.vnnlib"
    prop_path = instance.out / name
    prop_path.write_text(robustness_vnnlib(instance.x0, instance.label, instance.eps, 10))
    prop = load_vnnlib(prop_path)
    net = f"{instance.depth}x{instance.width}"
    described = {"net": net, "eps": instance.eps, "image": instance.index, "label": instance.label}
    options = VerifyOptions(surrogate_sparsity=instance.surrogate, bab=instance.bab)
    result = verify(network, prop, instance.limit, options)
    wrong = False
    if result.verdict == "sat":
        wrong = not prop.satisfied_by(result.x, network.forward(result.x))
    elif result.verdict == "unsat" and instance.depth <= 2:
        exact = AttackOptions(mode="optimize", highs=HighsOptions(time_limit=instance.limit, threads=1))
        check = find_adversarial_example(
            pixels, instance.x0, instance.label, norm="linf", radius=instance.eps, options=exact
        )
        wrong = check.found
    configuration = {"surrogate": instance.surrogate, "bab": instance.bab}
    verdict = {"verdict": result.verdict, "stage": result.stage}
    timing = {"seconds": result.seconds, "limit": instance.limit}
    return {**described, **configuration, **verdict, **timing, "wrong": wrong}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--first-image", type=int, default=0, help="index of the first test image")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.03, 0.05])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--surrogate-sparsity", type=float, default=0.8)
    parser.add_argument("--no-surrogate", action="store_true", help="run without the pruned surrogate only")
    parser.add_argument(
        "--bab",
        choices=["on", "off"],
        nargs="+",
        default=["on"],
        help="branch and bound racing the MIP, or the MIP alone; each value is one configuration",
    )
    parser.add_argument("--workers", type=int, default=1, help="instances verified in parallel processes")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply the 120/300 s limits")
    parser.add_argument("--out", type=Path, default=Path("runs/vnncomp"))
    parser.add_argument(
        "--data-dir", help="folder with the MNIST IDX files (default: prunemip's search path)"
    )
    parser.add_argument("--quick", action="store_true", help="2 layers of 32, 3 images, 10 s limits")
    args = parser.parse_args(argv)
    if args.quick:
        args.depths, args.width, args.images, args.epochs, args.timeout_scale = [2], 32, 3, 2, 10 / 120
    args.out.mkdir(parents=True, exist_ok=True)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    surrogates = (None,) if args.no_surrogate else (None, args.surrogate_sparsity)
    configurations = tuple(itertools.product(surrogates, [choice == "on" for choice in args.bab]))
    instances = [
        Instance(
            train_and_export(depth, args.width, args.epochs, args.out, args.data_dir),
            depth,
            args.width,
            eps,
            index,
            test.flat()[index],
            int(test.labels[index]),
            (120.0 if depth <= 2 else 300.0) * args.timeout_scale,
            surrogate,
            bab,
            args.out,
        )
        for depth in sorted(args.depths, reverse=True)  # the longest runs first
        for eps in args.eps
        for index in range(args.first_image, args.first_image + args.images)
        for surrogate, bab in configurations
    ]
    rows = []
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in as_completed([pool.submit(run_instance, instance) for instance in instances]):
            rows.append(done.result())
            print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: (args.depths.index(int(r["net"].split("x")[0])), r["eps"], r["image"]))
    print("\nnet        eps   surrogate  BaB  sat unsat timeout unknown wrong  mean s")
    summary = []
    for net in dict.fromkeys(r["net"] for r in rows):
        for eps in args.eps:
            for surrogate, bab in configurations:
                key = (net, eps, surrogate, bab)
                group = [r for r in rows if (r["net"], r["eps"], r["surrogate"], r["bab"]) == key]
                counts = {
                    v: sum(r["verdict"] == v for r in group) for v in ("sat", "unsat", "timeout", "unknown")
                }
                wrong = sum(r["wrong"] for r in group)
                mean = float(np.mean([r["seconds"] for r in group]))
                label = "-" if surrogate is None else f"{surrogate:g}"
                print(
                    f"{net:<10} {eps:<5g} {label:>9} {'on' if bab else 'off':>4} "
                    f"{counts['sat']:>4} {counts['unsat']:>5} "
                    f"{counts['timeout']:>7} {counts['unknown']:>7} {wrong:>5} {mean:>7.2f}"
                )
                configuration = {"surrogate": surrogate, "bab": bab}
                summary.append(
                    {"net": net, "eps": eps, **configuration, **counts, "wrong": wrong, "mean_s": mean}
                )
    total_wrong = sum(r["wrong"] for r in rows)
    print(
        f"{'PASS' if total_wrong == 0 else 'FAIL'}  zero wrong answers ({total_wrong} wrong of {len(rows)})"
    )
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main(sys.argv[1:])
