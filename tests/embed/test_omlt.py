"""OMLT: PrunemipFormulation in an OmltBlock, and conversions between prunemip and OMLT networks."""

from __future__ import annotations

import numpy as np
import pytest

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from tests.conftest import assert_one_line, random_network

pyo = pytest.importorskip("pyomo.environ")
pytest.importorskip("omlt")

from omlt import OffsetScaling, OmltBlock  # noqa: E402
from omlt.neuralnet import NetworkDefinition, ReluBigMFormulation  # noqa: E402
from omlt.neuralnet.layer import DenseLayer, InputLayer  # noqa: E402

from prunemip.embed.omlt import (  # noqa: E402
    PrunemipFormulation,
    from_omlt_network_definition,
    to_omlt_network_definition,
)

OPTIONS = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "threads": 1}


@pytest.fixture
def network() -> Network:
    return random_network(np.random.default_rng(5), [5, 9, 7, 3], 0.4, weight_scale=1.5)


def definition_of(network: Network, batch: bool = False, **options) -> NetworkDefinition:
    """An OMLT definition built the way its readers do (optionally with ONNX's batch dimension)."""
    definition = NetworkDefinition(**options)
    shape = [1, network.n_inputs] if batch else [network.n_inputs]
    previous = InputLayer(shape)
    definition.add_layer(previous)
    for layer in network.layers:
        in_size = [1, layer.n_in] if batch else [layer.n_in]
        out_size = [1, layer.n_out] if batch else [layer.n_out]
        dense = DenseLayer(
            in_size,
            out_size,
            layer.weight.toarray().T,
            layer.bias,
            activation="relu" if layer.activation == "relu" else "linear",
        )
        definition.add_layer(dense)
        definition.add_edge(previous, dense)
        previous = dense
    return definition


def margin_optimum(formulation, target, label) -> tuple[float, object]:
    model = pyo.ConcreteModel()
    model.nn = OmltBlock()
    model.nn.build_formulation(formulation)
    model.objective = pyo.Objective(
        expr=model.nn.outputs[target] - model.nn.outputs[label], sense=pyo.maximize
    )
    result = pyo.SolverFactory("appsi_highs").solve(model, options=OPTIONS)
    assert str(result.solver.termination_condition) == "optimal"
    return float(pyo.value(model.objective)), model


def test_round_trip(network: Network) -> None:
    definition = to_omlt_network_definition(network)
    assert definition.scaled_input_bounds == dict.fromkeys(range(5), (0.0, 1.0))
    back = from_omlt_network_definition(definition)
    assert back.architecture == network.architecture
    for mine, theirs in zip(network.layers, back.layers, strict=True):
        assert (mine.weight != theirs.weight).nnz == 0
        assert np.array_equal(mine.bias, theirs.bias)
        assert mine.activation == theirs.activation
    assert np.array_equal(back.input_spec.lower, network.input_spec.lower)
    assert np.array_equal(back.input_spec.upper, network.input_spec.upper)


def test_one_line_change_same_optimum_fewer_binaries(network: Network) -> None:
    definition = to_omlt_network_definition(network, (0.1, 0.9))
    theirs, omlt_model = margin_optimum(ReluBigMFormulation(definition), 2, 0)
    formulation = PrunemipFormulation(definition)
    ours, model = margin_optimum(formulation, 2, 0)
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert np.max(formulation.get_error()) < 1e-6

    def binaries(m):
        return sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary())

    assert binaries(model) == formulation.stats.binaries <= binaries(omlt_model) == network.n_relu
    # inputs keep OMLT's meaning: bounded by the definition's box
    assert all(model.nn.inputs[k].bounds == (0.1, 0.9) for k in range(5))


def test_offset_scaling_is_folded(network: Network) -> None:
    rng = np.random.default_rng(1)
    scaler = OffsetScaling(
        offset_inputs=rng.normal(size=5).tolist(),
        factor_inputs=rng.uniform(0.5, 2.0, 5).tolist(),
        offset_outputs=rng.normal(size=3).tolist(),
        factor_outputs=rng.uniform(0.5, 2.0, 3).tolist(),
    )
    definition = definition_of(
        network, scaling_object=scaler, scaled_input_bounds=dict.fromkeys(range(5), (0.0, 1.0))
    )
    theirs, _ = margin_optimum(ReluBigMFormulation(definition), 1, 2)
    formulation = PrunemipFormulation(definition)
    ours, model = margin_optimum(formulation, 1, 2)
    assert ours == pytest.approx(theirs, abs=1e-6)
    # the folded network maps unscaled inputs to unscaled outputs
    x = np.array([pyo.value(model.nn.inputs[k]) for k in range(5)])
    y = np.array([pyo.value(model.nn.outputs[j]) for j in range(3)])
    assert np.allclose(formulation.network.forward(x), y, atol=1e-6)
    assert not hasattr(model.nn, "scaled_inputs")


def test_onnx_style_batch_indexes(network: Network) -> None:
    definition = definition_of(
        network, batch=True, scaled_input_bounds={(0, k): (0.0, 1.0) for k in range(5)}
    )
    formulation = PrunemipFormulation(definition)
    assert formulation.input_indexes[0] == (0, 0)
    ours, model = margin_optimum(formulation, (0, 1), (0, 0))
    assert ours == pytest.approx(margin_optimum(ReluBigMFormulation(definition), (0, 1), (0, 0))[0], abs=1e-6)
    assert model.nn.inputs[0, 3].bounds == (0.0, 1.0)


def test_prunemip_network_and_explicit_bounds(network: Network) -> None:
    ours, model = margin_optimum(PrunemipFormulation(network, input_bounds=(0.3, 0.6)), 1, 0)
    via_definition, _ = margin_optimum(
        PrunemipFormulation(to_omlt_network_definition(network, (0.3, 0.6))), 1, 0
    )
    assert ours == pytest.approx(via_definition, abs=1e-9)
    assert model.nn.inputs[0].bounds == (0.3, 0.6)


# ----------------------------------------------------------------------------- errors
def test_missing_bounds(network: Network) -> None:
    definition = definition_of(network)  # no scaled_input_bounds
    with pytest.raises(PrunemipError) as error:
        PrunemipFormulation(definition)
    assert_one_line(error, "input 0 (inputs[0])", "scaled_input_bounds")
    PrunemipFormulation(definition, input_bounds=(0, 1))  # supplying them works
    unbounded = network.with_input_spec(InputSpec.create(5))
    with pytest.raises(PrunemipError) as error:
        to_omlt_network_definition(unbounded)
    assert_one_line(error, "inputs[0]", "no finite lower bound")


def one_layer_definition(weights: np.ndarray, activation: str, **bounds: object) -> NetworkDefinition:
    """An OMLT definition of 5 inputs and one dense layer of 2 outputs."""
    definition = NetworkDefinition(**bounds)
    first = InputLayer([5])
    dense = DenseLayer([5], [2], weights, np.zeros(2), activation=activation)
    definition.add_layer(first)
    definition.add_layer(dense)
    definition.add_edge(first, dense)
    return definition


def test_unsupported_layers(network: Network) -> None:
    bounds = {"scaled_input_bounds": dict.fromkeys(range(5), (0.0, 1.0))}
    definition = one_layer_definition(np.ones((5, 2)), "sigmoid", **bounds)
    with pytest.raises(PrunemipError) as error:
        PrunemipFormulation(definition)
    assert_one_line(error, "activation 'sigmoid'")
    with pytest.raises(PrunemipError) as error:
        PrunemipFormulation("model.onnx")
    assert_one_line(error, "NetworkDefinition or a prunemip Network")
    with pytest.raises(PrunemipError) as error:
        from_omlt_network_definition(one_layer_definition(np.ones((4, 2)), "relu"))
    assert_one_line(error, "weights of shape (4, 2)")
