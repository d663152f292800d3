"""Build time and model size of prunemip's Pyomo block and OMLT formulation vs OMLT's ReluBigMFormulation.

What it measures, for every network size × sparsity (defaults: 784-200-200-10 at 0 % and
90 %), over one input box (the L∞ ball of radius ``--eps`` around a random point of
``[0, 1]^n``, clipped to it). Networks, regions and OMLT's side come from
``encode_common.py``, shared with ``encode_speed.py``: the same seeded N(0, 1/fan_in)
weights, layer-wise magnitude pruning of the hidden layers, and the same OMLT
``NetworkDefinition`` built from the arrays.

* **pm Pyomo**: wall time of ``network_block(network, input_bounds=box)`` on a fresh
  ``ConcreteModel``. That covers the neuron bounds, ``encode`` and the Pyomo block with
  its own bounded inputs.
* **pm OMLT**: wall time of ``OmltBlock().build_formulation(PrunemipFormulation(network,
  input_bounds=box))``, the constructor (bounds, ``encode``) included.
* **OMLT**: wall time of ``OmltBlock().build_formulation(ReluBigMFormulation(net))``, as
  in ``encode_speed.py``. OMLT's FBBT bounds are included; building ``net`` is not.
* **pm highspy**: ``add_network`` into a ``highspy.Highs`` model holding the input
  columns. This is for reference; it is not one of the goals.

All timings are the median over ``--repeats``, after an untimed warm-up. Sizes are counted
as in ``encode_common.count_omlt``:
* rows, columns and binaries are Pyomo data objects;
* "terms" are the variables in the constraint bodies;
* "nnz" is what Pyomo's LP writer hands a solver, read back by HiGHS.

"unstable" counts the live neurons with ``l < 0 < u``. It is recomputed from the bounds
that the blocks used, with ``encode_common.live_neurons``, independently of the encoder.

Goals, printed as PASS/FAIL and never asserted:
* the Pyomo block builds at least 10× faster than OMLT at the largest sparsity;
* in both prunemip routes, the binaries equal the unstable live neurons;
* the same optimum. ``max logit[1] − logit[0]`` is solved with ``appsi_highs``
  (``--time-limit``) on the three Pyomo models, and with prunemip's own
  ``solvers.highs.solve``. This runs on ``--optimum-size`` (784-50-50-10, the smaller
  case, as in ``encode_speed.py``) at the largest sparsity, over the same box.

Run::

    python experiments/benchmarks/api_build.py --repeats 3
    python experiments/benchmarks/api_build.py --quick            # tiny nets

Needs the ``dev`` extra (pyomo, omlt). The machine's load average is printed: treat
timings from a loaded or small machine as indicative.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from encode_common import (
    QUICK_SIZES,
    QUICK_SPARSITIES,
    Column,
    add_margin_objective,
    build_omlt,
    cell,
    column_table,
    count_omlt,
    environment,
    live_neurons,
    make_network,
    make_region,
    parse_sizes,
    progress,
    quiet_pyomo,
    resolve_grid,
    solve_margin,
)

from prunemip.embed.base import neuron_bounds
from prunemip.network import Network
from prunemip.regions import InputRegion

DEFAULT_SIZES = "784-200-200-10"
DEFAULT_SPARSITIES = "0,0.9"
#: Goal: prunemip's Pyomo block builds at least this many times faster than OMLT's formulation.
SPEEDUP_GOAL = 10.0
OPTIMUM_TOLERANCE = 1e-4
#: The optimum check's network (at the largest sparsity): the default size leaves too many unstable
#: neurons to solve within ``--time-limit`` (experiments/benchmarks/README.md, ``api_build.py``).
OPTIMUM_SIZE = "784-50-50-10"


# --------------------------------------------------------------------------- builders
def build_pyomo_block(network: Network, region: InputRegion) -> tuple[Any, float]:
    import pyomo.environ as pyo

    from prunemip.embed.pyomo import network_block

    model = pyo.ConcreteModel()
    start = time.perf_counter()
    model.nn = network_block(network, input_bounds=(region.lower, region.upper))
    return model, time.perf_counter() - start


def build_pm_omlt(network: Network, region: InputRegion) -> tuple[Any, float]:
    import pyomo.environ as pyo
    from omlt import OmltBlock

    from prunemip.embed.omlt import PrunemipFormulation

    model = pyo.ConcreteModel()
    model.nn = OmltBlock()
    start = time.perf_counter()
    model.nn.build_formulation(PrunemipFormulation(network, input_bounds=(region.lower, region.upper)))
    return model, time.perf_counter() - start


def build_highspy(network: Network, region: InputRegion) -> tuple[Any, float]:
    import highspy

    from prunemip.embed.highs import add_network

    highs = highspy.Highs()
    highs.silent()
    empty = np.zeros(0, dtype=np.int32)
    n = network.n_inputs
    highs.addCols(n, np.zeros(n), region.lower, region.upper, 0, empty, empty, np.zeros(0))
    start = time.perf_counter()
    handle = add_network(highs, network, inputs=np.arange(n))
    return (highs, handle), time.perf_counter() - start


def timed(build: Callable[[Network, InputRegion], tuple[Any, float]], network, region, repeats) -> tuple:
    times, model = [], None
    for _ in range(repeats):
        model = None
        gc.collect()
        model, seconds = build(network, region)
        times.append(seconds)
    return model, statistics.median(times), times


def unstable_live(network: Network, region: InputRegion) -> tuple[int, str]:
    """Unstable live neurons by the bounds the blocks use (default method), counted independently."""
    bounds = neuron_bounds(network, region)
    live = live_neurons(network, bounds)
    count = sum(
        int(np.count_nonzero(bounds.unstable(k) & live[k]))
        for k, layer in enumerate(network.layers)
        if layer.activation == "relu"
    )
    return count, bounds.method


def measure(network: Network, region: InputRegion, repeats: int) -> dict[str, Any]:
    row: dict[str, Any] = {"net": network.architecture, "sparsity": None, "weight_nnz": network.nnz}
    for key, build in (("pm_pyomo", build_pyomo_block), ("pm_omlt", build_pm_omlt), ("omlt", build_omlt)):
        model, seconds, all_times = timed(build, network, region, repeats)
        row[key] = {"build_s": seconds, "build_s_all": all_times, **count_omlt(model)}
        del model
        gc.collect()
    (_, handle), seconds, all_times = timed(build_highspy, network, region, repeats)
    row["pm_highspy"] = {
        "build_s": seconds,
        "build_s_all": all_times,
        "columns": int(handle.columns.size),
        "rows": int(handle.rows.size),
        "binaries": int(handle.binary_columns.size),
        "nnz": handle.stats.nonzeros,
    }
    row["unstable_live"], row["bounds_method"] = unstable_live(network, region)
    row["hidden_neurons"] = network.n_relu
    row["speedup_pyomo"] = row["omlt"]["build_s"] / row["pm_pyomo"]["build_s"]
    row["speedup_pm_omlt"] = row["omlt"]["build_s"] / row["pm_omlt"]["build_s"]
    return row


# --------------------------------------------------------------------------- optimum
def check_optimum(
    network: Network, region: InputRegion, time_limit: float, sparsity: float
) -> dict[str, Any]:
    """``max logit[1] − logit[0]`` on the three Pyomo models (appsi_highs) and prunemip's own MIP."""
    import pyomo.environ as pyo

    from prunemip.encoders.bigm import encode
    from prunemip.solvers.highs import HighsOptions, solve
    from prunemip.solvers.result import SolveStatus

    bounds = neuron_bounds(network, region)
    own = solve(
        encode(network, region, bounds).with_margin_objective(1, 0),
        HighsOptions(time_limit=time_limit, mip_rel_gap=1e-6),
    )
    out: dict[str, Any] = {
        "net": network.architecture,
        "sparsity": sparsity,
        "prunemip_solve": {
            "status": own.status.value,
            "objective": own.objective if own.status == SolveStatus.OPTIMAL else None,
            "seconds": own.solve_seconds,
        },
    }
    for key, build in (("pm_pyomo", build_pyomo_block), ("pm_omlt", build_pm_omlt), ("omlt", build_omlt)):
        model, _ = build(network, region)
        add_margin_objective(model, 1, 0)
        status, objective, seconds = solve_margin(model, time_limit)
        out[key] = {"status": status, "objective": objective, "seconds": seconds}
        if objective is not None and key != "omlt":
            x = np.array([pyo.value(model.nn.inputs[k]) for k in range(network.n_inputs)])
            logits = network.forward(x)
            out[key]["witness_margin"] = float(logits[1] - logits[0])
    values = [out[k]["objective"] for k in ("prunemip_solve", "pm_pyomo", "pm_omlt", "omlt")]
    out["difference"] = None if None in values else float(max(values) - min(values))
    out["agree"] = None if out["difference"] is None else out["difference"] <= OPTIMUM_TOLERANCE
    return out


# --------------------------------------------------------------------------- reporting
def per_route(key: str, *routes: str) -> Callable[[dict[str, Any]], str]:
    """A cell holding ``key`` of each route's result, separated by ``/``."""
    return lambda r: "/".join(str(r[route][key]) for route in routes)


MAIN_COLUMNS: tuple[Column, ...] = (
    ("net", cell("net")),
    ("sparsity", cell("sparsity", fmt="{:.0%}")),
    ("w nnz", cell("weight_nnz")),
    ("pm Pyomo s", cell("pm_pyomo", "build_s", fmt="{:.3f}")),
    ("pm OMLT s", cell("pm_omlt", "build_s", fmt="{:.3f}")),
    ("OMLT s", cell("omlt", "build_s", fmt="{:.3f}")),
    ("Pyomo ×", cell("speedup_pyomo", fmt="{:.1f}x")),
    ("pm-OMLT ×", cell("speedup_pm_omlt", fmt="{:.1f}x")),
    ("pm highspy s", cell("pm_highspy", "build_s", fmt="{:.4f}")),
    ("rows pm/OMLT", per_route("rows", "pm_pyomo", "omlt")),
    ("cols pm/OMLT", per_route("columns", "pm_pyomo", "omlt")),
    ("nnz pm/OMLT", per_route("nnz", "pm_pyomo", "omlt")),
    ("terms pm/OMLT", per_route("terms", "pm_pyomo", "omlt")),
    ("bin pm/pmO/OMLT", per_route("binaries", "pm_pyomo", "pm_omlt", "omlt")),
    ("unstable", cell("unstable_live")),
)


def main_table(results: Sequence[dict[str, Any]]) -> str:
    return column_table(MAIN_COLUMNS, results)


def goal_checks(results: Sequence[dict[str, Any]], optimum: dict[str, Any] | None) -> list[dict[str, Any]]:
    checks = []

    def add(goal: str, where: str, ok: bool, detail: str) -> None:
        checks.append({"goal": goal, "where": where, "pass": ok, "detail": detail})

    top = max(r["sparsity"] for r in results)
    for r in results:
        where = f"{r['net']} {r['sparsity']:.0%}"
        if r["sparsity"] == top:
            add(
                f"Pyomo build >= {SPEEDUP_GOAL:g}x faster than OMLT at {top:.0%}",
                where,
                r["speedup_pyomo"] >= SPEEDUP_GOAL,
                f"{r['speedup_pyomo']:.1f}x ({r['pm_pyomo']['build_s']:.3f} s vs "
                f"{r['omlt']['build_s']:.3f} s)",
            )
        for key, label in (
            ("pm_pyomo", "Pyomo block"),
            ("pm_omlt", "OMLT formulation"),
            ("pm_highspy", "highspy"),
        ):
            add(
                f"binaries == unstable live neurons ({label})",
                where,
                r[key]["binaries"] == r["unstable_live"],
                f"{r[key]['binaries']} vs {r['unstable_live']} (OMLT: {r['omlt']['binaries']})",
            )
    if optimum is not None:
        detail = ", ".join(
            f"{k} {optimum[k]['objective']}" for k in ("prunemip_solve", "pm_pyomo", "pm_omlt", "omlt")
        )
        add(
            "same optimum (max logit[1] - logit[0]) on all routes",
            f"{optimum['net']} {optimum['sparsity']:.0%}",
            bool(optimum["agree"]),
            f"max difference {optimum['difference']}; {detail}",
        )
    return checks


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed builds per route and network (median)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the input point")
    parser.add_argument("--sizes", default=None, help=f"comma-separated widths (default {DEFAULT_SIZES})")
    parser.add_argument("--sparsities", default=None, help=f"comma-separated (default {DEFAULT_SPARSITIES})")
    parser.add_argument("--eps", type=float, default=0.05, help="L∞ radius of the input box")
    parser.add_argument("--time-limit", type=float, default=60.0, help="HiGHS limit per optimum solve (s)")
    parser.add_argument(
        "--optimum-size",
        default=None,
        help=f"network of the optimum check, at the largest sparsity (default {OPTIMUM_SIZE})",
    )
    parser.add_argument("--no-optimum", action="store_true", help="skip the optimum check")
    parser.add_argument("--out", type=Path, default=None, help="write all results as JSON here")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny run: {QUICK_SIZES} at {QUICK_SPARSITIES}, 1 repeat"
    )
    args = parser.parse_args(argv)
    args.optimum_size = parse_sizes(args.optimum_size or (QUICK_SIZES if args.quick else OPTIMUM_SIZE))[0]
    resolve_grid(parser, args, DEFAULT_SIZES, DEFAULT_SPARSITIES)
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet_pyomo()  # OMLT's own formulation floods W1002 warnings; prunemip's routes log none
    env = environment()
    small = make_network([8, 4, 4, 2], 0.0, args.seed)
    small_region = make_region(8, 0.1, args.seed)
    for build in (build_pyomo_block, build_pm_omlt, build_omlt, build_highspy):  # untimed warm-up
        build(small, small_region)
    results = []
    for widths in args.sizes:
        region = make_region(widths[0], args.eps, args.seed)
        for sparsity in args.sparsities:
            network = make_network(widths, sparsity, args.seed)
            progress(f"{network.architecture} at {sparsity:.0%}: {args.repeats} builds per route ...")
            row = measure(network, region, args.repeats)
            row["sparsity"] = sparsity
            results.append(row)
    optimum = None
    if not args.no_optimum:
        widths = args.optimum_size
        sparsity = max(args.sparsities)
        network = make_network(widths, sparsity, args.seed)
        progress(f"optimum check on {network.architecture} at {sparsity:.0%} ...")
        region = make_region(widths[0], args.eps, args.seed)
        optimum = check_optimum(network, region, args.time_limit, sparsity)
    env["loadavg_end"] = list(os.getloadavg())

    print(
        f"\nAPI build: prunemip Pyomo block / prunemip OMLT formulation vs OMLT ReluBigMFormulation; "
        f"L∞ eps={args.eps:g} box; seed {args.seed}; median of {args.repeats} builds"
    )
    print(
        f"machine: {env['cpus']} CPUs, load average {env['loadavg_start'][0]:.2f} (start) / "
        f"{env['loadavg_end'][0]:.2f} (end); pyomo {env['pyomo']}, omlt {env['omlt']}, "
        f"highspy {env['highspy']}; prunemip bounds: {results[0]['bounds_method']}"
    )
    print("(pm = prunemip; times in s, bounds included; nnz after Pyomo's LP writer; terms = variables")
    print(" in constraint bodies, incl. OMLT's 0*x; bin = binaries: pm Pyomo / pm OMLT / OMLT;")
    print(" unstable = live neurons with l < 0 < u by prunemip's bounds)\n")
    print(main_table(results))
    if optimum is not None:
        print(f"\nOptimum check ({optimum['net']} {optimum['sparsity']:.0%}, max logit[1] - logit[0]):")
        for key in ("prunemip_solve", "pm_pyomo", "pm_omlt", "omlt"):
            item = optimum[key]
            print(f"  {key:<15} {item['status']:<10} objective {item['objective']}  {item['seconds']:.2f} s")
    checks = goal_checks(results, optimum)
    print("\nGoals")
    if args.quick:
        print(
            "  (--quick: tiny nets, where fixed costs dominate; the speed-up goal is for the default sizes)"
        )
    for c in checks:
        print(f"  {'PASS' if c['pass'] else 'FAIL'}  {c['goal']:<58} {c['where']:>20}  {c['detail']}")
    output = {"environment": env, "args": vars(args) | {"out": str(args.out)}, "results": results}
    output |= {"optimum": optimum, "checks": checks}
    if args.out is not None:
        import json

        from prunemip.atomic import atomic_write_bytes

        atomic_write_bytes(args.out, json.dumps(output, indent=2, default=str).encode())
    return output


if __name__ == "__main__":
    main()
