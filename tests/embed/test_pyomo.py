"""The Pyomo block: prunemip's MipModel inside the user's model, its bounds, start values and errors."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import numpy as np
import pytest

from prunemip.encoders.bigm import encode
from prunemip.encoders.mip_model import NeuronStatus
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import solve
from tests.conftest import EXACT, assert_one_line, random_network

pyo = pytest.importorskip("pyomo.environ")

from pyomo.core.expr.visitor import identify_variables  # noqa: E402
from pyomo.repn import generate_standard_repn  # noqa: E402

from prunemip.embed.pyomo import PrunemipBlock, network_block  # noqa: E402

OPTIONS = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "threads": 1}


@pytest.fixture
def network() -> Network:
    return random_network(np.random.default_rng(11), [6, 12, 10, 3], 0.5, weight_scale=1.5)


def solve_model(model) -> float:
    result = pyo.SolverFactory("appsi_highs").solve(model, options=OPTIONS)
    assert str(result.solver.termination_condition) == "optimal"
    return float(pyo.value(model.objective))


def own_optimum(network: Network, lower, upper, target: int = 1, label: int = 0) -> float:
    mip = encode(network, InputRegion.box(np.broadcast_to(lower, 6), np.broadcast_to(upper, 6)))
    result = solve(mip.with_margin_objective(target, label), EXACT)
    assert result.objective is not None
    return result.objective


def test_block_is_the_mip_model(network: Network) -> None:
    """Only surviving weights become terms, one binary per unstable neuron, rows = MipModel rows."""
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    model.nn = PrunemipBlock()
    model.nn.build(network, inputs=model.x)
    mip = model.nn.mip
    binaries = [v for v in model.nn.component_data_objects(pyo.Var) if v.is_binary()]
    unstable = sum(layer.count(NeuronStatus.UNSTABLE) for layer in mip.layers)
    assert len(binaries) == mip.stats.binaries == unstable > 0
    rows = list(model.nn.component_data_objects(pyo.Constraint))
    assert len(rows) == mip.n_rows
    terms = 0
    for row in rows:
        repn = generate_standard_repn(row.body, compute_values=False)
        assert all(coef != 0 for coef in repn.linear_coefs)
        terms += len(repn.linear_vars)
    assert terms == mip.stats.nonzeros
    # the block's inputs are the user's variables: no copies, no linking rows
    assert [v.name for v in model.nn.inputs.values()] == [f"x[{k}]" for k in range(6)]
    assert all(
        v.parent_block() is model.nn
        for c in rows
        for v in identify_variables(c.body)
        if not v.name.startswith("x[")
    )


def test_own_inputs_take_the_network_range_and_start_inside(network: Network) -> None:
    block = network_block(network)
    assert np.all(block.input_lower == 0.0) and np.all(block.input_upper == 1.0)
    for var in block.component_data_objects(pyo.Var):
        assert var.value is not None
        assert var.lb is None or var.value >= var.lb - 1e-12, var.name
        assert var.ub is None or var.value <= var.ub + 1e-12, var.name
    # the start is the forward pass at the box centre
    assert np.allclose(block.output_values(), network.forward(np.full(6, 0.5)))
    assert np.max(block.get_error()) < 1e-12


def test_no_w1002_warning_flood(network: Network, caplog: pytest.LogCaptureFixture) -> None:
    from omlt import OmltBlock
    from omlt.neuralnet import ReluBigMFormulation

    from prunemip.embed.omlt import PrunemipFormulation, to_omlt_network_definition

    caplog.set_level(logging.WARNING)
    model = pyo.ConcreteModel()  # bounds exclude 0, where OMLT initialises its inputs
    model.x = pyo.Var(range(6), bounds=(0.1, 0.9), initialize=0.5)
    model.a = network_block(network, inputs=model.x)
    model.b = network_block(network, input_bounds=(0.2, 0.7))
    model.c = OmltBlock()
    model.c.build_formulation(PrunemipFormulation(network, (0.2, 0.7)))
    assert not [r for r in caplog.records if r.name.startswith("pyomo")]
    # control: OMLT's own formulation does log them, and caplog sees Pyomo's logger
    model.d = OmltBlock()
    model.d.build_formulation(ReluBigMFormulation(to_omlt_network_definition(network, (0.2, 0.7))))
    assert any("outside the bounds" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("formulation", ["substituted", "variable"])
def test_user_inputs_in_any_order_and_linked_outputs(network: Network, formulation: str) -> None:
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    model.y = pyo.Var(["a", "b", "c"])
    order = [3, 0, 5, 1, 4, 2]
    model.nn = network_block(
        network, inputs=[model.x[k] for k in order], outputs=model.y, formulation=formulation
    )
    assert len(model.nn.output_link) == 3
    model.objective = pyo.Objective(expr=model.y["b"] - model.y["a"], sense=pyo.maximize)
    assert solve_model(model) == pytest.approx(own_optimum(network, 0.0, 1.0), abs=1e-6)
    x = np.array([pyo.value(model.x[k]) for k in order])
    assert np.allclose(network.forward(x), [pyo.value(model.y[j]) for j in "abc"], atol=1e-6)
    assert np.max(model.nn.get_error()) < 1e-6


def test_input_bounds_tighter_than_the_variables_become_rows(network: Network) -> None:
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    model.nn = network_block(network, inputs=model.x, input_bounds=(0.2, 0.8))
    assert len(model.nn.input_box) == 6
    assert all(model.x[k].lb == 0 and model.x[k].ub == 1 for k in range(6))  # user vars untouched
    model.objective = pyo.Objective(expr=model.nn.outputs[1] - model.nn.outputs[0], sense=pyo.maximize)
    assert solve_model(model) == pytest.approx(own_optimum(network, 0.2, 0.8), abs=1e-6)
    assert np.all(model.nn.input_values() >= 0.2 - 1e-7) and np.all(model.nn.input_values() <= 0.8 + 1e-7)


def test_fixed_inputs_use_their_value(network: Network) -> None:
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    model.x[2].fix(0.3)
    model.free = pyo.Var(bounds=(0, 1))
    model.nn = network_block(network, inputs=model.x)
    assert model.nn.input_lower[2] == model.nn.input_upper[2] == 0.3


def test_print_stats(network: Network) -> None:
    block = network_block(network)
    out = io.StringIO()
    block.print_stats(file=out)
    text = out.getvalue()
    assert f"{block.stats.binaries} binary" in text and "unstable" in text


# ----------------------------------------------------------------------------- errors
def test_unbounded_input_names_the_variable(network: Network) -> None:
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    model.x[4].setub(None)
    with pytest.raises(PrunemipError) as error:
        network_block(network, inputs=model.x)
    assert_one_line(error, "input 4 (x[4])", "upper bound", "input_bounds")
    model.z = pyo.Var(range(6))
    with pytest.raises(PrunemipError) as error:
        network_block(network, inputs=model.z)
    assert_one_line(error, "input 0 (z[0])", "lower bound")
    # an explicit input_bounds supplies what the model lacks
    block = network_block(network, inputs=model.z, input_bounds=(-1, 1))
    assert len(block.input_box) == 6


def test_unbounded_network_range_is_an_error(network: Network) -> None:
    unbounded = network.with_input_spec(InputSpec.create(6))
    with pytest.raises(PrunemipError) as error:
        network_block(unbounded)
    assert_one_line(error, "inputs[0]", "no finite lower bound")


@pytest.mark.parametrize(
    ("inputs", "outputs", "fragment"),
    [
        (lambda m: [m.x[k] for k in range(5)], None, "inputs holds 5 variables but the network has 6"),
        (lambda m: m.x, lambda m: [m.x[0], m.x[1]], "outputs holds 2 variables but the network has 3"),
        (lambda m: [m.x[0] + 1, *list(m.x.values())[1:]], None, "inputs[0] is not a Pyomo variable"),
        (lambda m: "x", None, "not a string"),
    ],
)
def test_shape_and_type_mismatches(network: Network, inputs, outputs, fragment: str) -> None:
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    with pytest.raises(PrunemipError) as error:
        network_block(network, inputs=inputs(model), outputs=None if outputs is None else outputs(model))
    assert_one_line(error, fragment)


def test_disjoint_bounds_and_rebuild_and_values(network: Network) -> None:
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(6), bounds=(0, 1))
    with pytest.raises(PrunemipError) as error:
        network_block(network, inputs=model.x, input_bounds=(2, 3))
    assert_one_line(error, "do not intersect")
    model.nn = network_block(network, inputs=model.x)
    with pytest.raises(PrunemipError, match="already built"):
        model.nn.build(network, inputs=model.x)
    with pytest.raises(PrunemipError, match="solve the model first"):
        model.nn.get_error()
    empty = PrunemipBlock(concrete=True)
    with pytest.raises(PrunemipError, match="build"):
        empty.print_stats()


def test_import_prunemip_stays_light() -> None:
    code = "import sys, prunemip; print(any(m.split('.')[0] in ('pyomo', 'omlt') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
