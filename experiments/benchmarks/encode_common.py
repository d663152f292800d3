"""What ``encode_speed.py``, ``api_build.py`` and ``pyomo_gc.py`` share: the seeded benchmark networks
and their input region, the live neurons (computed independently of the encoder), OMLT's side (its
``ReluBigMFormulation`` built, counted and solved), the result tables, the machine's environment and
the size grid.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.network import Network
from prunemip.regions import InputRegion

QUICK_SIZES = "64-16-16-10"
QUICK_SPARSITIES = "0,0.9"


# --------------------------------------------------------------------------- networks
def parse_sizes(text: str) -> list[list[int]]:
    """``"784-50-50-10,64-8-10"`` → ``[[784, 50, 50, 10], [64, 8, 10]]``."""
    sizes = []
    for part in text.split(","):
        widths = [int(w) for w in part.strip().split("-")]
        if len(widths) < 2 or min(widths) < 1:
            raise SystemExit(f"error: bad network size {part!r}; write widths like 784-50-50-10")
        sizes.append(widths)
    return sizes


def parse_sparsities(text: str) -> list[float]:
    values = [float(s) for s in text.split(",")]
    if any(not 0.0 <= s < 1.0 for s in values):
        raise SystemExit(f"error: sparsities must lie in [0, 1), got {text!r}")
    return values


def dense_weights(widths: Sequence[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights ``N(0, 1/fan_in)`` of shape ``(n_out, n_in)`` and biases ``N(0, 0.1²)``."""
    rng = np.random.default_rng([seed, *widths])
    weights = [rng.normal(0.0, 1.0 / math.sqrt(n_in), (n_out, n_in)) for n_in, n_out in pairwise(widths)]
    biases = [rng.normal(0.0, 0.1, n_out) for n_out in widths[1:]]
    return weights, biases


def magnitude_prune(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero the ``round(sparsity·size)`` smallest-magnitude entries (exact count)."""
    pruned = weight.copy()
    n_zero = round(sparsity * weight.size)
    if n_zero:
        order = np.argsort(np.abs(weight), axis=None, kind="stable")
        pruned.flat[order[:n_zero]] = 0.0
    return pruned


def make_network(widths: Sequence[int], sparsity: float, seed: int, prune_output: bool = False) -> Network:
    """The seeded dense network, magnitude-pruned layer by layer (the output layer only if asked)."""
    weights, biases = dense_weights(widths, seed)
    last = len(weights) - 1
    pruned = [
        w if k == last and not prune_output else magnitude_prune(w, sparsity) for k, w in enumerate(weights)
    ]
    return Network.from_arrays(pruned, biases)


def make_region(n_inputs: int, eps: float, seed: int) -> InputRegion:
    """The L∞ ball of radius ``eps`` around a seeded uniform point of ``[0, 1]^n``, clipped to it."""
    center = np.random.default_rng([seed, n_inputs, 7]).uniform(0.0, 1.0, n_inputs)
    return InputRegion.ball("linf", center, eps, np.zeros(n_inputs), np.ones(n_inputs))


def live_neurons(network: Network, bounds: NeuronBounds) -> list[np.ndarray]:
    """Neurons that need a column, computed independently of the encoder.

    Forward: a neuron is a variable if it has a nonzero weight from a variable of the
    previous layer (inputs are variables) and is not stably inactive (``u ≤ 0``).
    Backward: a variable is live if it is an output or feeds a live neuron.
    """
    variable = []
    prev = np.ones(network.n_inputs, dtype=bool)
    for k, layer in enumerate(network.layers):
        has_input = (abs(layer.weight) @ prev.astype(np.float64)) > 0
        if layer.activation == "relu":
            has_input &= ~bounds.stably_inactive(k)
        variable.append(has_input)
        prev = has_input
    live = [v.copy() for v in variable]
    for k in range(len(live) - 2, -1, -1):
        feeds = (abs(network.layers[k + 1].weight).T @ live[k + 1].astype(np.float64)) > 0
        live[k] &= feeds
    return live


# --------------------------------------------------------------------------- OMLT
def quiet_pyomo() -> None:
    """Silence Pyomo's W1002 warnings (OMLT initialises bounded inputs to 0, outside their box)."""
    logging.getLogger("pyomo").setLevel(logging.ERROR)


def omlt_network(network: Network, region: InputRegion) -> Any:
    """An OMLT ``NetworkDefinition`` holding the same weights, bounded by the region's box."""
    from prunemip.embed.omlt import to_omlt_network_definition

    return to_omlt_network_definition(network, region)


def build_omlt(network: Network, region: InputRegion) -> tuple[Any, float]:
    """A ``ConcreteModel`` with the OMLT big-M block, and the ``build_formulation`` seconds."""
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.neuralnet import ReluBigMFormulation

    model = pyo.ConcreteModel()
    model.nn = OmltBlock()
    formulation = ReluBigMFormulation(omlt_network(network, region))
    start = time.perf_counter()
    model.nn.build_formulation(formulation)
    return model, time.perf_counter() - start


def add_margin_objective(model: Any, target: int, label: int) -> None:
    import pyomo.environ as pyo

    model.margin = pyo.Objective(expr=model.nn.outputs[target] - model.nn.outputs[label], sense=pyo.maximize)


def solve_margin(model: Any, time_limit: float) -> tuple[str, float | None, float]:
    """Maximise ``model.margin`` with ``appsi_highs`` (mip_rel_gap 1e-6): termination
    condition, objective when optimal (the solution is then loaded), seconds."""
    import pyomo.environ as pyo
    from pyomo.opt import TerminationCondition

    start = time.perf_counter()
    result = pyo.SolverFactory("appsi_highs").solve(
        model, timelimit=time_limit, options={"mip_rel_gap": 1e-6}, load_solutions=False
    )
    seconds = time.perf_counter() - start
    condition = result.solver.termination_condition
    if condition != TerminationCondition.optimal:
        return str(condition), None, seconds
    model.solutions.load_from(result)
    return str(condition), float(pyo.value(model.margin)), seconds


def count_omlt(model: Any) -> dict[str, int]:
    """Rows, columns, binaries and expression terms of the Pyomo model; nonzeros after the LP writer."""
    import highspy
    import pyomo.environ as pyo
    from pyomo.core.expr.visitor import identify_variables

    constraints = list(model.component_data_objects(pyo.Constraint, active=True))
    variables = list(model.component_data_objects(pyo.Var))
    terms = sum(len(list(identify_variables(c.body, include_fixed=True))) for c in constraints)
    add_margin_objective(model, 1, 0)  # without an objective the LP writer adds a dummy column
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "omlt.lp"
        model.write(str(path), io_options={"symbolic_solver_labels": False})
        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.readModel(str(path))
        lp = highs.getLp()
    model.del_component(model.margin)
    return {
        "rows": len(constraints),
        "columns": len(variables),
        "binaries": sum(1 for v in variables if v.is_binary()),
        "terms": terms,
        "nnz": len(lp.a_matrix_.value_),
        "writer_rows": int(lp.num_row_),
        "writer_columns": int(lp.num_col_),
        "writer_binaries": sum(1 for t in lp.integrality_ if t == highspy.HighsVarType.kInteger),
    }


# --------------------------------------------------------------------------- tables
def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


#: A table column: its header and how to read its cell from one result.
Column = tuple[str, Callable[[dict[str, Any]], str]]


def cell(*path: str, fmt: str = "{}") -> Callable[[dict[str, Any]], str]:
    """A cell reading the value at ``path`` (nested keys) of a result, formatted by ``fmt``."""

    def read(result: dict[str, Any]) -> str:
        value: Any = result
        for key in path:
            value = value[key]
        return fmt.format(value)

    return read


def column_table(columns: Sequence[Column], results: Sequence[dict[str, Any]]) -> str:
    """``format_table`` with one row per result and one cell per column."""
    rows = [[read(r) for _, read in columns] for r in results]
    return format_table([header for header, _ in columns], rows)


# --------------------------------------------------------------------------- run
def environment() -> dict[str, Any]:
    from importlib.metadata import version

    import omlt
    import pyomo.version
    import scipy

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pyomo": pyomo.version.version,
        "omlt": omlt.__version__,
        "highspy": version("highspy"),
        "loadavg_start": list(os.getloadavg()),
    }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_grid(
    parser: argparse.ArgumentParser, args: argparse.Namespace, default_sizes: str, default_sparsities: str
) -> None:
    """Parse ``--sizes``/``--sparsities`` in place (``--quick``: the tiny grid, one repeat)."""
    if args.quick:
        args.sizes = args.sizes or QUICK_SIZES
        args.sparsities = args.sparsities or QUICK_SPARSITIES
        args.repeats = 1
    args.sizes = parse_sizes(args.sizes or default_sizes)
    args.sparsities = parse_sparsities(args.sparsities or default_sparsities)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
