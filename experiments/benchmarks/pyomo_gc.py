"""Build time of prunemip's Pyomo block with and without pausing the cyclic garbage collector.

The measurement behind ``prunemip/embed/pyomo.py``'s ``_gc_paused``: a dense 784-200-200-10 net
(``encode_common.make_network``), its L∞ box of radius 0.05, median of 5 builds per setting
after a warm-up, each setting twice.

    python experiments/benchmarks/pyomo_gc.py
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyomo.environ as pyo
from encode_common import make_network, make_region

import prunemip.embed.pyomo as pyomo_route


def main() -> None:
    network = make_network([784, 200, 200, 10], 0.0, 0)
    region = make_region(784, 0.05, 0)
    box = (region.lower, region.upper)
    paused = pyomo_route._gc_paused

    def build() -> float:
        model = pyo.ConcreteModel()
        start = time.perf_counter()
        model.nn = pyomo_route.network_block(network, input_bounds=box)
        return time.perf_counter() - start

    settings = (("collector paused", paused), ("collector running", contextlib.nullcontext))
    build()
    try:
        for _ in range(2):
            for name, context in settings:
                pyomo_route._gc_paused = context
                times = [build() for _ in range(5)]
                print(f"{name:<18} median {statistics.median(times):.3f} s over 5 builds", flush=True)
    finally:
        pyomo_route._gc_paused = paused


if __name__ == "__main__":
    main()
