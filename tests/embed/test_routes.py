"""The three embedding routes (Pyomo block, OMLT formulation, highspy handle) reach prunemip's own optimum.

For each network and input region, ``max logit[t] − logit[l]`` is solved four ways:
prunemip's own MIP (``encode`` + ``solvers.highs.solve``, no gap) and the network
embedded in a host model built by the user — a Pyomo model with ``PrunemipBlock`` (HiGHS
through ``appsi_highs``), an ``OmltBlock`` with ``PrunemipFormulation``, and a
``highspy.Highs`` model with ``add_network``. The host imposes the region itself: the box
(or L∞ ball) as variable bounds, the L1 ball as rows over split variables. All optima
agree, and each solution's outputs reproduce a float64 forward pass of its inputs.
"""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from prunemip.embed.base import EmbeddedNetwork
from prunemip.embed.highs import add_network
from prunemip.encoders.bigm import encode
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import solve
from prunemip.solvers.result import SolveStatus
from tests.conftest import EXACT, random_network

pyo = pytest.importorskip("pyomo.environ")
pytest.importorskip("omlt")

from omlt import OmltBlock  # noqa: E402

from prunemip.embed.omlt import PrunemipFormulation  # noqa: E402
from prunemip.embed.pyomo import network_block  # noqa: E402

TOLERANCE = 1e-5
PYOMO_OPTIONS = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "threads": 1}

NETWORKS = {
    "5-8-6-3 dense": ([5, 8, 6, 3], 0.0, 1),
    "6-12-10-4 60%": ([6, 12, 10, 4], 0.6, 2),
    "4-10-3 30%": ([4, 10, 3], 0.3, 3),
    "7-16-16-2 80%": ([7, 16, 16, 2], 0.8, 4),
}


def make_network(key: str) -> Network:
    widths, sparsity, seed = NETWORKS[key]
    return random_network(np.random.default_rng(seed), widths, sparsity, weight_scale=1.5)


def make_region(network: Network, kind: str) -> InputRegion:
    n = network.n_inputs
    spec = network.input_spec
    x0 = np.random.default_rng(n).uniform(0.2, 0.8, n)
    if kind == "box":
        return InputRegion.box(spec.lower, spec.upper)
    if kind == "linf":
        return InputRegion.ball("linf", x0, 0.15, spec.lower, spec.upper)
    return InputRegion.ball("l1", x0, 0.6, spec.lower, spec.upper)


def reference_optimum(network: Network, region: InputRegion, target: int, label: int) -> float:
    mip = encode(network, region).with_margin_objective(target, label)
    result = solve(mip, EXACT)
    assert result.status == SolveStatus.OPTIMAL
    assert result.objective is not None
    return result.objective


# ----------------------------------------------------------------------------- hosts
def _pyomo_l1(model, inputs, region: InputRegion) -> None:
    n = region.size
    assert region.center is not None
    center = region.center.tolist()
    model.p = pyo.Var(range(n), bounds=(0, None))
    model.q = pyo.Var(range(n), bounds=(0, None))
    model.split = pyo.Constraint(range(n), rule=lambda m, k: inputs[k] - center[k] == m.p[k] - m.q[k])
    model.l1 = pyo.Constraint(expr=sum(model.p[k] + model.q[k] for k in range(n)) <= region.radius)


def _solve_pyomo(model) -> float:
    result = pyo.SolverFactory("appsi_highs").solve(model, options=PYOMO_OPTIONS)
    assert str(result.solver.termination_condition) == "optimal"
    return float(pyo.value(model.objective))


def solve_pyomo_block(network: Network, region: InputRegion, target: int, label: int) -> tuple[float, object]:
    model = pyo.ConcreteModel()
    lower, upper = region.lower.tolist(), region.upper.tolist()
    model.x = pyo.Var(range(network.n_inputs), bounds=lambda m, k: (lower[k], upper[k]))
    model.nn = network_block(network, inputs=model.x)
    if region.norm == "l1":
        _pyomo_l1(model, model.x, region)
    model.objective = pyo.Objective(
        expr=model.nn.outputs[target] - model.nn.outputs[label], sense=pyo.maximize
    )
    value = _solve_pyomo(model)
    return value, model.nn


def solve_omlt(network: Network, region: InputRegion, target: int, label: int) -> tuple[float, object]:
    model = pyo.ConcreteModel()
    model.nn = OmltBlock()
    formulation = PrunemipFormulation(network, input_bounds=(region.lower, region.upper))
    model.nn.build_formulation(formulation)
    if region.norm == "l1":
        _pyomo_l1(model, model.nn.inputs, region)
    model.objective = pyo.Objective(
        expr=model.nn.outputs[target] - model.nn.outputs[label], sense=pyo.maximize
    )
    value = _solve_pyomo(model)
    return value, formulation


def solve_highspy(network: Network, region: InputRegion, target: int, label: int) -> tuple[float, object]:
    highs = highspy.Highs()
    highs.silent()
    for name, value in (("mip_rel_gap", 0.0), ("mip_abs_gap", 0.0), ("threads", 1)):
        highs.setOptionValue(name, value)
    n = network.n_inputs
    x = highs.addVariables(n, lb=region.lower.tolist(), ub=region.upper.tolist(), name_prefix="x")
    if region.norm == "l1":
        assert region.center is not None
        p = highs.addVariables(n, lb=0.0, name_prefix="p")
        q = highs.addVariables(n, lb=0.0, name_prefix="q")
        for k in range(n):
            highs.addConstr(x[k] - p[k] + q[k] == float(region.center[k]))
        highs.addConstr(highs.qsum(p[k] + q[k] for k in range(n)) <= region.radius)
    handle = add_network(highs, network, inputs=x)
    outputs = handle.output_vars
    highs.maximize(outputs[target] - outputs[label])
    assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(highs.getInfo().objective_function_value), handle


ROUTES = {"pyomo": solve_pyomo_block, "omlt": solve_omlt, "highspy": solve_highspy}


@pytest.mark.parametrize("net_key", list(NETWORKS))
@pytest.mark.parametrize("kind", ["box", "linf", "l1"])
def test_routes_reach_prunemips_optimum(net_key: str, kind: str) -> None:
    network = make_network(net_key)
    region = make_region(network, kind)
    target, label = 1, 0
    expected = reference_optimum(network, region, target, label)
    for route, run in ROUTES.items():
        value, handle = run(network, region, target, label)
        assert isinstance(handle, EmbeddedNetwork), route
        assert value == pytest.approx(expected, abs=TOLERANCE, rel=TOLERANCE), route
        # the solution reproduces the forward pass and lies in the region
        assert np.max(handle.get_error()) <= 1e-6, route
        x = handle.input_values()
        assert region.contains(x, tol=1e-6), route
        logits = network.forward(x)
        assert logits[target] - logits[label] == pytest.approx(value, abs=1e-6), route


def test_routes_agree_with_omlts_own_formulation() -> None:
    """The OMLT conversion feeds OMLT's ReluBigMFormulation the same network: same optimum."""
    from omlt.neuralnet import ReluBigMFormulation

    from prunemip.embed.omlt import to_omlt_network_definition

    network = make_network("6-12-10-4 60%")
    region = make_region(network, "linf")
    model = pyo.ConcreteModel()
    model.nn = OmltBlock()
    model.nn.build_formulation(
        ReluBigMFormulation(to_omlt_network_definition(network, (region.lower, region.upper)))
    )
    model.objective = pyo.Objective(expr=model.nn.outputs[2] - model.nn.outputs[3], sense=pyo.maximize)
    assert _solve_pyomo(model) == pytest.approx(
        reference_optimum(network, region, 2, 3), abs=TOLERANCE, rel=TOLERANCE
    )
