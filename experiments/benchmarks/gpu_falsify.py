"""The falsifier on CPU and on CUDA: time per batch and verdicts, on the MNIST-256 nets.

The networks and properties of ``vnncomp_mnist.py`` (MLPs with 2, 4 and 6 hidden layers of 256
ReLUs, trained and cached there as ``mnist_{depth}x256.onnx``; the box ``[x0 − ε, x0 + ε] ∩ [0, 1]``
and one conjunction ``y_label − y_j ≤ 0`` per other class ``j``). Two measurements per net:

* time per batch: one batch of ``B`` starts per conjunction (9 conjunctions, so ``9B`` rows) and
  100 APGD steps, on each device, for the batch sizes of ``--batches`` (the first image);
* verdicts: verify's falsification (its default effort, stopping at the first point found, within
  ``--share`` seconds) on both devices for every image and ε: found or not, and the time.

Only the falsifier is imported (no HiGHS), so the script runs wherever torch and onnx are:

    python experiments/benchmarks/gpu_falsify.py --data-dir ../shared/data/mnist --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from prunemip.data import load_dataset
from prunemip.engine.falsify import VERIFY_EFFORT, FalsifyOptions, falsify
from prunemip.engine.subdomains import OutputRows
from prunemip.model_io import load_network
from prunemip.network import Network
from prunemip.regions import InputRegion


def robustness(
    x0: np.ndarray, label: int, eps: float, n_classes: int
) -> tuple[InputRegion, list[OutputRows]]:
    """The box ``x0 ± eps`` in [0, 1] and, per class ``j ≠ label``, the conjunction ``y_label − y_j ≤ 0``."""
    region = InputRegion.box(np.maximum(x0 - eps, 0.0), np.minimum(x0 + eps, 1.0))
    conjunctions = []
    for j in range(n_classes):
        if j != label:
            row = np.zeros((1, n_classes))
            row[0, label], row[0, j] = 1.0, -1.0
            conjunctions.append(OutputRows.create(row, [0.0]))
    return region, conjunctions


def batch_seconds(
    network: Network, region: InputRegion, conjunctions: list, batch: int, device: str
) -> float:
    """Seconds of one batch of ``batch`` starts per conjunction and 100 steps (after a warm-up)."""
    options = FalsifyOptions(batch=batch, restarts=batch)
    falsify(network, region, conjunctions, FalsifyOptions(batch=1, restarts=1, steps=2), device=device)
    return falsify(network, region, conjunctions, options, device=device, stop_at_first=False).seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nets", type=Path, default=Path("runs/vnncomp"), help="folder of mnist_{d}x256.onnx"
    )
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files")
    parser.add_argument("--device", default="cuda", help="the device compared with cpu (cuda)")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.03, 0.05])
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--share", type=float, default=7.5, help="seconds of falsification per instance (7.5)"
    )
    args = parser.parse_args(argv)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    devices = ("cpu", args.device)
    agree = total = 0
    for depth in args.depths:
        network = load_network(args.nets / f"mnist_{depth}x256.onnx")
        region, conjunctions = robustness(test.flat()[0], int(test.labels[0]), args.eps[0], 10)
        for batch in args.batches:
            times = [batch_seconds(network, region, conjunctions, batch, device) for device in devices]
            print(
                f"{depth}x256 batch {batch:>4} x 9 conjunctions: "
                + ", ".join(f"{d} {t:.3f} s" for d, t in zip(devices, times, strict=True)),
                flush=True,
            )
        for eps in args.eps:
            for index in range(args.images):
                region, conjunctions = robustness(test.flat()[index], int(test.labels[index]), eps, 10)
                verdicts = []
                for device in devices:
                    deadline = time.perf_counter() + args.share
                    result = falsify(
                        network, region, conjunctions, VERIFY_EFFORT, deadline=deadline, device=device
                    )
                    verdicts.append(("sat" if result.found is not None else "none", result.seconds))
                total += 1
                agree += verdicts[0][0] == verdicts[1][0]
                print(
                    f"{depth}x256 eps {eps:g} image {index}: "
                    + ", ".join(f"{d} {v} {s:.2f} s" for d, (v, s) in zip(devices, verdicts, strict=True)),
                    flush=True,
                )
    print(f"verdicts agree on {agree} of {total} instances")


if __name__ == "__main__":
    main(sys.argv[1:])
