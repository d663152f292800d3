"""Encode speed and model size: prunemip's big-M encoder against OMLT's ``ReluBigMFormulation``.

What it measures, for every network size × sparsity (defaults: 784-50-50-10 and
784-200-200-10 at 0 %, 50 % and 90 %), over one input region (the L∞ ball of radius
``--eps`` around a random point of ``[0, 1]^n``, clipped to ``[0, 1]``):

* prunemip: wall time of ``encode(network, region)`` (median over ``--repeats``), which
  includes the interval-arithmetic bounds; the bounds' own time is reported separately.
  Rows, columns, nonzeros and binaries come from ``MipModel.stats``; the unstable
  neurons from ``interval_bounds`` (``l < 0 < u``).
* OMLT: wall time of ``OmltBlock.build_formulation(ReluBigMFormulation(net))`` (median
  over repeats) on a Pyomo ``ConcreteModel``, where ``net`` is an OMLT
  ``NetworkDefinition`` built directly from the same weight arrays (``InputLayer`` +
  ``DenseLayer``s, ``relu`` hidden / ``linear`` output, ``scaled_input_bounds`` keyed by
  the input index ``k``). OMLT computes its own interval bounds inside that call, so
  both timings include bounds. Sizes, counted on the last model built:

  - rows / columns: active ``Constraint`` / ``Var`` data objects of the Pyomo model;
  - binaries: ``Var`` data objects with ``is_binary()``;
  - "terms": variables appearing in the constraint bodies (``identify_variables``), which
    includes OMLT's ``0*x`` terms for pruned weights;
  - "nnz": nonzeros after Pyomo's LP writer (which drops zero coefficients), read back
    by HiGHS (``Highs.readModel`` on the written ``.lp``), i.e. what a solver receives.

Networks: for each size one dense network with weights ``N(0, 1/fan_in)`` and biases
``N(0, 0.1²)`` (seeded), then **layer-wise unstructured magnitude pruning**: in every
hidden layer the ``round(s·n_in·n_out)`` smallest-|w| weights are zeroed; the output
layer stays dense (the project's pruning rule) unless ``--prune-output`` prunes it too;
biases are kept. "w nnz" counts all layers. All sparsities of one size prune the same
dense network. An untimed warm-up of both tools on a tiny network runs first (imports,
lazy loading).

Goal checks are printed as PASS/FAIL (never asserted): prunemip ≥ 50× faster than OMLT;
prunemip nonzeros = surviving weights of live neurons + O(neurons); prunemip binaries =
unstable live neurons; OMLT binaries = all hidden neurons. ``--check-optimum`` also
solves ``max logit[1] − logit[0]`` with HiGHS on both models (prunemip's
``solvers.highs.solve``; Pyomo's ``appsi_highs`` for OMLT) for the smallest network at
the largest sparsity and compares the optima.

Run::

    python experiments/benchmarks/encode_speed.py --repeats 3 --check-optimum
    python experiments/benchmarks/encode_speed.py --quick            # seconds, tiny nets
    python experiments/benchmarks/encode_speed.py --sizes 784-100-100-10 --sparsities 0,0.8 \\
        --eps 0.02 --out results.json

Needs the ``dev`` extra (pyomo, omlt). Timings are wall-clock on whatever machine runs
it; treat them as indicative on a loaded or small machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
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
    progress,
    quiet_pyomo,
    resolve_grid,
    solve_margin,
)

from prunemip.encoders.bigm import DEFAULT_FORMULATION, encode
from prunemip.encoders.bounds.interval import NeuronBounds, interval_bounds
from prunemip.encoders.mip_model import MipModel
from prunemip.network import Network
from prunemip.regions import InputRegion

DEFAULT_SIZES = "784-50-50-10,784-200-200-10"
DEFAULT_SPARSITIES = "0,0.5,0.9"
#: Goal: prunemip's build (bounds included) at least this many times faster than OMLT's.
SPEEDUP_GOAL = 50.0
#: Largest per-neuron matrix overhead of the big-M rows besides the weights ("variable"
#: formulation: ẑ-definition 1, y ≥ ẑ 2, y ≤ ẑ − l(1 − δ) 3, y ≤ uδ 2 entries).
OVERHEAD_PER_NEURON = 8
OPTIMUM_TOLERANCE = 1e-4


# --------------------------------------------------------------------------- prunemip
def nnz_accounting(network: Network, bounds: NeuronBounds, live: list[np.ndarray]) -> dict[str, int]:
    """Expected matrix nonzeros of both formulations, from the network and the bounds alone."""
    prev = np.ones(network.n_inputs, dtype=bool)
    live_weights = unstable_weights = unstable = linear = 0
    for k, layer in enumerate(network.layers):
        rows = layer.weight[live[k]][:, prev]
        live_weights += int(np.count_nonzero(rows.data))
        if layer.activation == "relu":
            is_unstable = bounds.unstable(k)[live[k]]
            unstable += int(np.count_nonzero(is_unstable))
            linear += int(np.count_nonzero(~is_unstable))  # stably active: one equality row
            unstable_weights += int(np.count_nonzero(rows[is_unstable].data))
        else:
            linear += int(np.count_nonzero(live[k]))
        prev = live[k]
    return {
        "live_weights": live_weights,
        "unstable_row_weights": unstable_weights,
        "unstable_live": unstable,
        "linear_live": linear,
        # ẑ-variable: each weight once; +1 per equality row, +8 per unstable neuron
        "expected_variable": live_weights + linear + 8 * unstable,
        # substituted: weights of unstable neurons twice (y ≥ ẑ and y ≤ ẑ − l(1 − δ)); +5 per unstable
        "expected_substituted": live_weights + unstable_weights + linear + 5 * unstable,
    }


def measure_prunemip(network: Network, region: InputRegion, repeats: int) -> dict[str, Any]:
    times, bound_times = [], []
    mip: MipModel | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        mip = encode(network, region)
        times.append(time.perf_counter() - start)
        bound_times.append(mip.stats.bounds_seconds)
    assert mip is not None
    bounds = interval_bounds(network, region)
    live = live_neurons(network, bounds)
    accounting = nnz_accounting(network, bounds, live)
    start = time.perf_counter()
    variable = encode(network, region, formulation="variable")
    variable_seconds = time.perf_counter() - start
    stats = mip.stats
    return {
        "formulation": DEFAULT_FORMULATION,
        "build_s": statistics.median(times),
        "build_s_all": times,
        "bounds_s": statistics.median(bound_times),
        "rows": stats.rows,
        "columns": stats.columns,
        "nnz": stats.nonzeros,
        "binaries": stats.binaries,
        "unstable": bounds.n_unstable,
        "per_layer": list(stats.per_layer),
        "variable_formulation": {
            "build_s": variable_seconds,
            "rows": variable.stats.rows,
            "columns": variable.stats.columns,
            "nnz": variable.stats.nonzeros,
            "binaries": variable.stats.binaries,
        },
        **accounting,
    }


# --------------------------------------------------------------------------- OMLT
def measure_omlt(network: Network, region: InputRegion, repeats: int) -> dict[str, Any]:
    times = []
    model = None
    for _ in range(repeats):
        model = None
        gc.collect()
        model, seconds = build_omlt(network, region)
        times.append(seconds)
    counts = count_omlt(model)
    del model
    gc.collect()
    return {"build_s": statistics.median(times), "build_s_all": times, **counts}


# --------------------------------------------------------------------------- optimum check
def check_optimum(network: Network, region: InputRegion, time_limit: float) -> dict[str, Any]:
    """Solve ``max logit[1] − logit[0]`` on both models with HiGHS and compare."""

    from prunemip.solvers.highs import HighsOptions, solve
    from prunemip.solvers.result import SolveStatus

    options = HighsOptions(time_limit=time_limit, mip_rel_gap=1e-6)
    mip = encode(network, region).with_margin_objective(target=1, label=0)
    ours = solve(mip, options)
    witness_margin = None
    if ours.solution is not None:
        logits = network.forward(mip.inputs_from_solution(ours.solution))
        witness_margin = float(logits[1] - logits[0])

    model, _ = build_omlt(network, region)
    add_margin_objective(model, 1, 0)
    omlt_status, omlt_objective, omlt_seconds = solve_margin(model, time_limit)
    both = ours.status == SolveStatus.OPTIMAL and omlt_objective is not None
    difference = abs(ours.objective - omlt_objective) if both else None
    return {
        "net": network.architecture,
        "sparsity": network.sparsity,
        "prunemip_status": ours.status.value,
        "prunemip_objective": ours.objective,
        "prunemip_solve_s": ours.solve_seconds,
        "prunemip_nodes": ours.nodes,
        "prunemip_witness_margin": witness_margin,
        "omlt_status": omlt_status,
        "omlt_objective": omlt_objective,
        "omlt_solve_s": omlt_seconds,
        "difference": difference,
        "agree": None if difference is None else difference <= OPTIMUM_TOLERANCE,
    }


# --------------------------------------------------------------------------- reporting
def _live(formulation: dict[str, Any], r: dict[str, Any]) -> str:
    return str(formulation["nnz"] - r["prunemip"]["live_weights"])


def _exact(formulation: dict[str, Any], expected: int) -> str:
    return "exact" if formulation["nnz"] == expected else f"!={expected}"


MAIN_COLUMNS: tuple[Column, ...] = (
    ("net", cell("net")),
    ("sparsity", cell("sparsity", fmt="{:.0%}")),
    ("w nnz", cell("weight_nnz")),
    ("pm build s", cell("prunemip", "build_s", fmt="{:.4f}")),
    ("pm bounds s", cell("prunemip", "bounds_s", fmt="{:.4f}")),
    ("OMLT build s", cell("omlt", "build_s", fmt="{:.3f}")),
    ("speed-up", cell("speedup", fmt="{:.0f}x")),
    ("pm rows", cell("prunemip", "rows")),
    ("pm cols", cell("prunemip", "columns")),
    ("pm nnz", cell("prunemip", "nnz")),
    ("pm bin", cell("prunemip", "binaries")),
    ("OMLT rows", cell("omlt", "rows")),
    ("OMLT cols", cell("omlt", "columns")),
    ("OMLT nnz", cell("omlt", "nnz")),
    ("OMLT terms", cell("omlt", "terms")),
    ("OMLT bin", cell("omlt", "binaries")),
    ("unstable", cell("prunemip", "unstable")),
)

NNZ_COLUMNS: tuple[Column, ...] = (
    ("net", cell("net")),
    ("sparsity", cell("sparsity", fmt="{:.0%}")),
    ("live w", cell("prunemip", "live_weights")),
    ("unst w", cell("prunemip", "unstable_row_weights")),
    ("neurons", cell("neurons")),
    ("bound 8N", cell("overhead_bound")),
    ("subst nnz", cell("prunemip", "nnz")),
    ("subst-live", lambda r: _live(r["prunemip"], r)),
    ("subst ok", lambda r: _exact(r["prunemip"], r["prunemip"]["expected_substituted"])),
    ("var nnz", cell("prunemip", "variable_formulation", "nnz")),
    ("var-live", lambda r: _live(r["prunemip"]["variable_formulation"], r)),
    ("var ok", lambda r: _exact(r["prunemip"]["variable_formulation"], r["prunemip"]["expected_variable"])),
    ("var build s", cell("prunemip", "variable_formulation", "build_s", fmt="{:.4f}")),
)


def main_table(results: Sequence[dict[str, Any]]) -> str:
    return column_table(MAIN_COLUMNS, results)


def nnz_table(results: Sequence[dict[str, Any]]) -> str:
    return column_table(NNZ_COLUMNS, results)


def goal_checks(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []

    def add(goal: str, row: dict[str, Any], ok: bool, detail: str) -> None:
        checks.append(
            {"goal": goal, "net": row["net"], "sparsity": row["sparsity"], "pass": ok, "detail": detail}
        )

    for r in results:
        pm, om = r["prunemip"], r["omlt"]
        var = pm["variable_formulation"]
        add(f"speed-up >= {SPEEDUP_GOAL:g}x", r, r["speedup"] >= SPEEDUP_GOAL, f"{r['speedup']:.0f}x")
        bound = r["overhead_bound"]
        add(
            f"nnz - live weights <= 8N ({DEFAULT_FORMULATION}, default)",
            r,
            pm["nnz"] - pm["live_weights"] <= bound and pm["nnz"] == pm["expected_substituted"],
            f"{pm['nnz'] - pm['live_weights']} vs {bound} "
            f"(of which {pm['unstable_row_weights']} are unstable rows' weights counted twice)",
        )
        add(
            "nnz - live weights <= 8N (variable)",
            r,
            var["nnz"] - pm["live_weights"] <= bound and var["nnz"] == pm["expected_variable"],
            f"{var['nnz'] - pm['live_weights']} vs {bound}",
        )
        add(
            "prunemip binaries == unstable live neurons",
            r,
            pm["binaries"] == pm["unstable_live"] == var["binaries"],
            f"{pm['binaries']} binaries, {pm['unstable_live']} unstable live, "
            f"{pm['unstable']} unstable in all",
        )
        add(
            "OMLT binaries == hidden neurons",
            r,
            om["binaries"] == r["hidden_neurons"],
            f"{om['binaries']} vs {r['hidden_neurons']}",
        )
    return checks


def warm_up(seed: int) -> None:
    """Untimed tiny run of both tools, so imports and lazy loading stay out of the timings."""
    network = make_network([8, 4, 4, 2], 0.0, seed)
    region = make_region(8, 0.1, seed)
    encode(network, region)
    build_omlt(network, region)


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed builds per tool and network (median)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the input point")
    parser.add_argument("--sizes", default=None, help=f"comma-separated widths (default {DEFAULT_SIZES})")
    parser.add_argument("--sparsities", default=None, help=f"comma-separated (default {DEFAULT_SPARSITIES})")
    parser.add_argument("--eps", type=float, default=0.05, help="L∞ radius of the input region")
    parser.add_argument("--out", type=Path, default=None, help="write all results as JSON here")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny run: {QUICK_SIZES} at {QUICK_SPARSITIES}, 1 repeat"
    )
    parser.add_argument(
        "--check-optimum",
        action="store_true",
        help="solve max logit[1]-logit[0] on both models (smallest net, largest sparsity)",
    )
    parser.add_argument(
        "--prune-output", action="store_true", help="prune the output layer too (default: keep it dense)"
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="HiGHS limit for --check-optimum (s)")
    args = parser.parse_args(argv)
    resolve_grid(parser, args, DEFAULT_SIZES, DEFAULT_SPARSITIES)
    if args.eps < 0:
        parser.error("--eps must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables and goal checks; return everything as a dict."""
    args = parse_args(argv)
    quiet_pyomo()
    env = environment()
    warm_up(args.seed)
    results = []
    for widths in args.sizes:
        region = make_region(widths[0], args.eps, args.seed)
        for sparsity in args.sparsities:
            network = make_network(widths, sparsity, args.seed, args.prune_output)
            progress(f"{network.architecture} at {sparsity:.0%}: prunemip ...")
            pm = measure_prunemip(network, region, args.repeats)
            progress(f"{network.architecture} at {sparsity:.0%}: OMLT ({args.repeats} builds) ...")
            om = measure_omlt(network, region, args.repeats)
            hidden = sum(layer.n_out for layer in network.layers if layer.activation == "relu")
            neurons = sum(layer.n_out for layer in network.layers)
            results.append(
                {
                    "net": network.architecture,
                    "sparsity": sparsity,
                    "weight_nnz": network.nnz,
                    "hidden_neurons": hidden,
                    "neurons": neurons,
                    "overhead_bound": OVERHEAD_PER_NEURON * neurons,
                    "speedup": om["build_s"] / pm["build_s"],
                    "prunemip": pm,
                    "omlt": om,
                }
            )
    env["loadavg_end"] = list(os.getloadavg())

    print(
        f"\nEncode speed: prunemip encode() vs OMLT ReluBigMFormulation; L∞ eps={args.eps:g} around a random "
        f"point of [0,1]^n; seed {args.seed}; median of {args.repeats} builds"
    )
    pruned_layers = "all layers" if args.prune_output else "the hidden layers (output layer dense)"
    print(f"networks: N(0, 1/fan_in) weights, layer-wise magnitude pruning of {pruned_layers}")
    print(
        f"machine: {env['cpus']} CPUs, load average {env['loadavg_start'][0]:.2f} (start) / "
        f"{env['loadavg_end'][0]:.2f} (end); pyomo {env['pyomo']}, omlt {env['omlt']}"
    )
    print("(pm = prunemip, default formulation; times in s, bounds included in build;")
    print(" OMLT nnz after the LP writer; OMLT terms = variables in constraint bodies incl. 0*x;")
    print(" unstable = l < 0 < u by prunemip's interval bounds)\n")
    print(main_table(results))
    print("\nNonzero accounting (live w = surviving weights of live neurons; unst w = of those, the ones")
    print("in unstable neurons' rows; N = hidden + output neurons; 'exact' = nnz equals the count")
    print("derived from the weights and bounds alone; var = the ẑ-variable formulation, built once)\n")
    print(nnz_table(results))

    checks = goal_checks(results)
    print("\nGoals")
    if args.quick:
        print(
            "  (--quick: tiny nets, where fixed costs dominate; the speed-up goal is for the default sizes)"
        )
    for c in checks:
        verdict = "PASS" if c["pass"] else "FAIL"
        print(f"  {verdict}  {c['goal']:<50} {c['net']:>15} {c['sparsity']:>4.0%}  {c['detail']}")
    summary: dict[str, bool] = {}
    for c in checks:
        summary[c["goal"]] = summary.get(c["goal"], True) and c["pass"]
    for goal, ok in summary.items():
        print(f"  {'PASS' if ok else 'FAIL'} on every row: {goal}")

    optimum = None
    if args.check_optimum:
        widths = min(args.sizes, key=sum)
        sparsity = max(args.sparsities)
        network = make_network(widths, sparsity, args.seed, args.prune_output)
        progress(f"optimum check on {network.architecture} at {sparsity:.0%} ...")
        optimum = check_optimum(network, make_region(widths[0], args.eps, args.seed), args.time_limit)
        print(
            f"\nOptimum check, max logit[1] - logit[0] on {optimum['net']} at {sparsity:.0%}, "
            "HiGHS, mip_rel_gap 1e-6"
        )
        print(
            f"  prunemip: {optimum['prunemip_status']}, objective {optimum['prunemip_objective']}, "
            f"{optimum['prunemip_solve_s']:.2f} s, {optimum['prunemip_nodes']} nodes; "
            f"witness forward-pass margin {optimum['prunemip_witness_margin']}"
        )
        print(
            f"  OMLT (appsi_highs): {optimum['omlt_status']}, objective {optimum['omlt_objective']}, "
            f"{optimum['omlt_solve_s']:.2f} s incl. transfer"
        )
        if optimum["agree"] is None:
            print("  SKIP  optimum agreement (not both optimal)")
        else:
            verdict = "PASS" if optimum["agree"] else "FAIL"
            difference = optimum["difference"]
            print(f"  {verdict}  optima agree within {OPTIMUM_TOLERANCE:g}: |diff| = {difference:.3g}")

    output = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "environment": env,
        "results": results,
        "checks": checks,
        "optimum": optimum,
    }
    if args.out is not None:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(output, indent=2, default=str))
        tmp.replace(args.out)
        print(f"\nwrote {args.out}")
    return output


if __name__ == "__main__":
    main()
