"""The framework-free Network: the forward pass against dense numpy, pre-activations, the
reverse-mode input gradient against finite differences, construction errors and the
derived networks and summaries."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network
from tests.conftest import assert_one_line, random_network, seeds, sparse_networks


def dense_forward(network: Network, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and pre-activations of a batch with dense numpy matrices, layer by layer."""
    h, pre = x, []
    for layer in network.layers:
        z = h @ layer.weight.toarray().T + layer.bias
        pre.append(z)
        h = np.maximum(z, 0.0) if layer.activation == "relu" else z
    return h, pre


# ----------------------------------------------------------------------- forward pass
@given(sparse_networks(), seeds)
def test_forward_matches_dense_numpy(network, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((7, network.n_inputs))
    logits, pre = dense_forward(network, x)
    np.testing.assert_allclose(network.forward(x), logits, rtol=1e-12, atol=1e-12)
    for got, expected in zip(network.pre_activations(x), pre, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(network.predict(x), np.argmax(network.forward(x), axis=1))
    # One input of any shape with n_inputs entries gives 1-D results.
    single = network.forward(x[0].reshape(network.n_inputs, 1))
    assert single.shape == (network.n_outputs,) and network.predict(x[0]) == int(np.argmax(single))
    assert [z.shape for z in network.pre_activations(x[0])] == [(layer.n_out,) for layer in network.layers]


@given(sparse_networks(), seeds)
def test_forward_with_preactivations_is_batch_shaped(network, seed):
    rng = np.random.default_rng(seed)
    x = rng.random(network.n_inputs)
    logits, pre = network.forward_with_preactivations(x)
    assert logits.shape == (1, network.n_outputs) and all(z.ndim == 2 and len(z) == 1 for z in pre)
    np.testing.assert_array_equal(logits[0], network.forward(x))
    for got, expected in zip(pre, network.pre_activations(x), strict=True):
        np.testing.assert_array_equal(got[0], expected)


# ----------------------------------------------------------------------- input gradient
def jacobian(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central differences of the vector function ``f`` at ``x``, shape ``(len(f(x)), x.size)``."""
    return np.array([(f(x + step * e) - f(x - step * e)) / (2 * step) for e in np.eye(x.size)]).T


def away_from_kinks(network: Network, x: np.ndarray, margin: float = 1e-4) -> bool:
    """Whether no ReLU pre-activation is within ``margin`` of 0 (the gradient is then smooth)."""
    relu = [
        z
        for z, layer in zip(network.pre_activations(x), network.layers, strict=True)
        if layer.activation == "relu"
    ]
    return all(np.all(np.abs(z) > margin) for z in relu)


@given(sparse_networks(), seeds)
def test_input_gradient_matches_finite_differences(network, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((3, network.n_inputs))
    weights = rng.normal(size=(3, network.n_outputs))
    _, pre = network.forward_with_preactivations(x)
    gradient = network.input_gradient(pre, weights)
    assert gradient.shape == x.shape
    for row in range(3):
        if not away_from_kinks(network, x[row]):
            continue
        expected = weights[row] @ jacobian(network.forward, x[row])
        np.testing.assert_allclose(gradient[row], expected, rtol=1e-5, atol=1e-6)
    # With ``layer``: the gradient of a weighted sum of that layer's pre-activations.
    for k, layer in enumerate(network.layers):
        seeds_k = rng.normal(size=(3, layer.n_out))
        gradient = network.input_gradient(pre, seeds_k, layer=k)
        for row in range(3):
            if not away_from_kinks(network, x[row]):
                continue
            expected = seeds_k[row] @ jacobian(lambda p, k=k: network.pre_activations(p)[k], x[row])
            np.testing.assert_allclose(gradient[row], expected, rtol=1e-5, atol=1e-6)


def test_input_gradient_of_an_inactive_relu_is_zero():
    network = Network.from_arrays(
        [np.array([[1.0, -1.0]]), np.array([[2.0]])], [np.array([-5.0]), np.zeros(1)]
    )
    _, pre = network.forward_with_preactivations(np.array([0.5, 0.5]))
    np.testing.assert_array_equal(network.input_gradient(pre, np.ones((1, 1))), [[0.0, 0.0]])
    # The layer's own pre-activation is differentiated before its ReLU.
    np.testing.assert_array_equal(network.input_gradient(pre, np.ones((1, 1)), layer=0), [[1.0, -1.0]])


# ----------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Network.from_arrays([], []), "at least one layer"),
        (
            lambda: Network.from_arrays([np.ones((2, 3))], [np.zeros(2)], activations=["relu", "identity"]),
            "2 activations",
        ),
        (
            lambda: Network.from_arrays([np.ones((2, 3))], [np.zeros(2), np.zeros(2)]),
            "1 weight matrices but 2",
        ),
        (lambda: Network.from_arrays([np.ones((2, 3))], [np.zeros(3)]), "bias has shape (3,)"),
        (lambda: Network.from_arrays([np.array([[1.0, np.nan]])], [np.zeros(1)]), "weights contain NaN"),
        (lambda: Network.from_arrays([np.ones((1, 2))], [np.array([np.inf])]), "bias contains NaN or Inf"),
        (
            lambda: Network.from_arrays([np.ones((2, 3)), np.ones((1, 3))], [np.zeros(2), np.zeros(1)]),
            "layer 1 takes 3",
        ),
        (
            lambda: Network.from_arrays([np.ones((2, 3))], [np.zeros(2)], InputSpec.create(4)),
            "first layer takes 3",
        ),
        (lambda: Layer.create(np.ones((2, 3)), np.zeros(2), "tanh"), "unsupported activation"),
        (lambda: InputSpec.create(3, 1.0, np.array([2.0, 0.5, 2.0])), "input 1 has lower bound"),
        (lambda: InputSpec.create(2, np.nan, 1.0), "NaN"),
        (lambda: InputSpec.create(3, np.zeros(2), 1.0), "2 entries but the network has 3"),
        (lambda: random_network(np.random.default_rng(0), [3, 2]).forward(np.zeros(4)), "does not match"),
        (
            lambda: random_network(np.random.default_rng(0), [3, 2]).fold_input_normalization(
                0.0, [1.0, 0.0, 1.0]
            ),
            "std must be finite and nonzero",
        ),
    ],
)
def test_bad_networks_are_one_line_errors(build, fragment):
    with pytest.raises(PrunemipError) as error:
        build()
    assert_one_line(error, fragment)


def test_explicit_zeros_are_pruned_weights_and_summaries_count_dead_neurons():
    weight = sp.csr_matrix(
        (np.array([1.0, 0.0, 2.0]), (np.array([0, 0, 2]), np.array([0, 1, 1]))), shape=(3, 2)
    )
    network = Network.from_arrays([weight, np.array([[1.0, 0.0, 1.0]])], [np.zeros(3), np.zeros(1)])
    first = network.layers[0]
    assert first.weight.nnz == 3 and first.nnz == 2  # the stored zero is kept (the mask) but not counted
    assert network.nnz == 4 and network.dense_size == 9 and network.sparsity == pytest.approx(5 / 9)
    assert network.architecture == "2-3-1" and network.widths == [2, 3, 1] and network.n_relu == 3
    rows = network.summary()
    assert (rows[0].neurons_without_inputs, rows[0].neurons_without_outputs) == (1, 1)
    assert rows[1].neurons_without_outputs == 0 and rows[0].sparsity == pytest.approx(4 / 6)
    text = network.format_summary()
    assert text.splitlines()[0] == "Network 2-3-1: 4 nonzero weights, sparsity 55.6%"
    assert len(text.splitlines()) == 4


# ----------------------------------------------------------------------- derived networks
@given(sparse_networks(), seeds)
def test_folded_normalisation_takes_raw_inputs(network, seed):
    rng = np.random.default_rng(seed)
    mean, std = rng.random(network.n_inputs), rng.uniform(0.2, 2.0, network.n_inputs)
    folded = network.fold_input_normalization(mean, std)
    x = rng.random((5, network.n_inputs))
    np.testing.assert_allclose(folded.forward(x), network.forward((x - mean) / std), rtol=1e-10, atol=1e-10)
    assert folded.layers[0].weight.nnz == network.layers[0].weight.nnz  # the mask is kept
    assert folded.input_spec.normalization is not None and network.input_spec.normalization is None


@given(st.integers(1, 5), st.sampled_from([0.0, -1.0]), st.sampled_from([1.0, 255.0]), st.booleans())
def test_input_spec_round_trips_and_ranges(size, lower, upper, per_input):
    upper_bound = np.linspace(upper, upper + 1, size) if per_input else upper
    spec = InputSpec.create((size, 1), lower, upper_bound, {"mean": 0.5, "std": 0.25}, "digits")
    again = InputSpec.from_dict(spec.to_dict())
    assert again.shape == (size, 1) and again.size == size and again.dataset == "digits"
    np.testing.assert_array_equal(again.lower, spec.lower)
    np.testing.assert_array_equal(again.upper, spec.upper)
    assert again.normalization == spec.normalization and again.is_bounded
    assert spec.to_dict()["lower"] == lower  # one number when every entry agrees
    assert not InputSpec.create(size).is_bounded
    widened = spec.with_range(-2.0, 2.0)
    assert widened.dataset == "digits" and np.all(widened.upper == 2.0)


def test_derived_networks_share_layers_and_extend_metadata():
    network = random_network(np.random.default_rng(1), [3, 4, 2]).with_metadata(source="test")
    tagged = network.with_metadata(sparsity=0.5)
    assert tagged.metadata == {"source": "test", "sparsity": 0.5} and network.metadata == {"source": "test"}
    respec = network.with_input_spec(InputSpec.create(3, -1.0, 1.0))
    assert respec.layers is network.layers and np.all(respec.input_spec.lower == -1.0)
