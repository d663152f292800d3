"""Exact simplification keeps the outputs on the region and the MIP optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import interval_bounds
from prunemip.encoders.bounds.linear import linear_bounds
from prunemip.encoders.simplify import simplify, simplify_network
from prunemip.network import InputSpec, Layer, Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import solve
from tests.conftest import (
    EXACT,
    ball_region,
    norms,
    random_network,
    sample_region,
    seeds,
    sparse_networks,
)


# ----------------------------------------------------------------------- simplify
@given(sparse_networks(max_inputs=6, sparsities=(0.0, 0.5, 0.8)), seeds, norms, st.booleans())
def test_simplified_network_has_the_same_outputs_on_the_region(network, seed, norm, with_constants):
    rng = np.random.default_rng(seed)
    if with_constants:  # some neurons without inputs, and biases that switch others off
        layers = list(network.layers)
        first = layers[0].weight.toarray()
        first[rng.random(first.shape[0]) < 0.3] = 0.0
        bias = layers[0].bias - 2.0 * (rng.random(layers[0].n_out) < 0.3)
        layers[0] = Layer.create(first, bias, "relu")
        network = Network(tuple(layers), network.input_spec)
    region = ball_region(network, rng.random(network.n_inputs), norm, float(rng.choice([0.05, 0.3, 1.0])))
    bounds = linear_bounds(network, region)
    result = simplify_network(network, bounds)
    small = result.network
    assert small.n_outputs == network.n_outputs and small.n_inputs == network.n_inputs
    assert small.n_relu <= network.n_relu and small.nnz <= network.nnz
    points = sample_region(region, rng, 300)
    if network.n_inputs <= 6:
        corners = np.array(list(itertools.product(*zip(region.lower, region.upper, strict=True))))
        points = np.vstack([points, corners]) if region.norm != "l1" else points
    np.testing.assert_allclose(small.forward(points), network.forward(points), rtol=1e-12, atol=1e-12)
    # Bounds move both ways soundly.
    restricted = result.restrict(bounds)
    assert restricted.contains(small, points)
    small_bounds = linear_bounds(small, region)
    expanded = result.expand(small_bounds, bounds)
    assert expanded.contains(network, points)
    assert sum(result.removed.values()) == network.n_relu - small.n_relu


def test_simplify_removes_inactive_constant_and_dead_neurons():
    """n0 inactive, n1 constant 0.5 (folded), n2 dead (no outgoing weight), n3 kept."""
    w0 = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, -1.0], [2.0, -1.0]])
    b0 = np.array([-5.0, 0.5, 0.0, 0.1])
    w1 = np.array([[3.0, 2.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0]])
    network = Network.from_arrays([w0, w1], [b0, np.array([0.0, 0.25])], InputSpec.create(2, 0, 1))
    region = InputRegion.box(np.zeros(2), np.ones(2))
    result = simplify_network(network, interval_bounds(network, region))
    assert result.removed == {"inactive": 1, "constant": 1, "dead": 1}
    assert [k.tolist() for k in result.kept] == [[3], [0, 1]]
    np.testing.assert_array_equal(result.network.layers[1].bias, [1.0, -0.25])  # 0 + 2·0.5, 0.25 − 0.5
    # Nothing is folded into layer 0; the fold into layer 1 carries a rounding bound only.
    assert not result.error[0].any() and 0 < result.error[1].max() <= 1e-14
    x = np.array([[0.2, 0.9], [1.0, 0.0], [0.0, 0.0]])
    # The same outputs up to the order of float64 additions.
    small = simplify(network, interval_bounds(network, region))
    np.testing.assert_allclose(small.forward(x), network.forward(x), rtol=0, atol=1e-15)


def test_identity_hidden_layer_counts_a_constant_neuron_once():
    """A constant neuron of an identity hidden layer is folded, not also counted as inactive."""
    w0 = np.array([[1.0, -1.0], [0.0, 0.0]])
    w1 = np.array([[1.0, 2.0]])
    layers = [Layer.create(w0, [0.0, 0.5], "identity"), Layer.create(w1, [0.0], "identity")]
    network = Network(tuple(layers), InputSpec.create(2, 0, 1))
    region = InputRegion.box(np.zeros(2), np.ones(2))
    result = simplify_network(network, interval_bounds(network, region))
    assert result.removed == {"inactive": 0, "constant": 1, "dead": 0}
    x = np.array([[0.2, 0.9], [1.0, 0.0]])
    np.testing.assert_allclose(result.network.forward(x), network.forward(x), rtol=0, atol=1e-15)


def test_mip_of_the_simplified_network_has_the_same_optimum(rng):
    network = random_network(rng, [5, 12, 12, 3], 0.5, bias_scale=1.5)
    region = ball_region(network, rng.random(5), "linf", 0.2)
    bounds = linear_bounds(network, region)
    small = simplify(network, bounds)
    for target, label in ((1, 0), (2, 1)):
        full = solve(encode(network, region, bounds).with_margin_objective(target, label), EXACT)
        reduced = solve(encode(small, region).with_margin_objective(target, label), EXACT)
        assert full.objective == pytest.approx(reduced.objective, abs=1e-7)
