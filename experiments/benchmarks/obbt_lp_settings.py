"""Seconds per LP of the LP-tightening stage by formulation and simplex strategy.

The settings behind ``solvers/obbt/common.py``'s ``LP_FORMULATION`` and ``ObbtOptions.simplex_strategy``:
the dense Fashion-MNIST 2x200 benchmark net (``bench_nets.py``), L∞ ε = 0.02 around the first
test images, linear bounds then ``lp_tighten`` with an unlimited budget; each setting twice.

    python experiments/benchmarks/obbt_lp_settings.py --images 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_nets import build_pair

from prunemip.data import load_dataset
from prunemip.encoders.bounds.linear import linear_bounds
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import ObbtOptions
from prunemip.solvers.obbt.lp import lp_tighten

SETTINGS = {  # name → (formulation, HiGHS simplex_strategy)
    "variable, dual simplex": ("variable", 1),
    "substituted, dual simplex": ("substituted", 1),
    "variable, primal simplex": ("variable", 4),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--eps", type=float, default=0.02)
    args = parser.parse_args(argv)
    network = build_pair("fashion-mnist", "2x200")["dense"]
    test = load_dataset("fashion-mnist", "test")
    regions = [InputRegion.ball("linf", test.flat()[i], args.eps, 0.0, 1.0) for i in range(args.images)]
    bases = [linear_bounds(network, region) for region in regions]
    for _ in range(2):
        for name, (formulation, strategy) in SETTINGS.items():
            seconds, lps, unstable = 0.0, 0, 0
            for region, base in zip(regions, bases, strict=True):
                options = ObbtOptions(formulation=formulation, simplex_strategy=strategy)
                stage = lp_tighten(network, region, base, options).stages[-1]
                seconds, lps, unstable = (
                    seconds + stage.seconds,
                    lps + stage.details["lps_solved"],
                    unstable + stage.unstable,
                )
            per_lp = f"{1e3 * seconds / max(lps, 1):6.1f} ms per LP"
            print(f"{name:<27} {per_lp} ({lps} LPs, {seconds:.2f} s, {unstable} unstable left)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
