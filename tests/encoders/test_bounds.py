"""Interval bounds: sound over the region (sampled points, box corners, exact arithmetic)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import interval_bounds, interval_layer
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from prunemip.regions import InputRegion
from tests.conftest import (
    ball_region,
    exact_pre_activations,
    random_network,
    sample_region,
    seeds,
    sparse_networks,
)


def assert_contains(bounds, network, points):
    for k, z in enumerate(network.pre_activations(points)):
        assert np.all(z >= bounds.lower[k]), (k, np.min(z - bounds.lower[k]))
        assert np.all(z <= bounds.upper[k]), (k, np.min(bounds.upper[k] - z))


def assert_contains_exactly(bounds, network, x):
    """The bounds contain the exact (rational) pre-activations, not only the float ones."""
    for k, values in enumerate(exact_pre_activations(network, x)):
        for j, value in enumerate(values):
            assert bounds.lower[k][j] <= value <= bounds.upper[k][j], (k, j, float(value))


@given(sparse_networks(), seeds, st.sampled_from(["linf", "l1"]), st.sampled_from([0.0, 0.01, 0.1, 0.5, 2.0]))
def test_bounds_contain_sampled_pre_activations(network, seed, norm, radius):
    rng = np.random.default_rng(seed)
    x0 = rng.random(network.n_inputs)
    region = ball_region(network, x0, norm, radius)
    bounds = interval_bounds(network, region)
    points = sample_region(region, rng, 200)
    assert all(region.contains(p, tol=1e-12) for p in points)
    assert_contains(bounds, network, points)
    assert bounds.contains(network, points)
    # The L1 bounds are valid over the whole bounding box, not only the ball.
    box = InputRegion.box(region.lower, region.upper)
    assert_contains(bounds, network, sample_region(box, rng, 100))


@given(sparse_networks(max_inputs=7), seeds)
def test_bounds_contain_every_corner_of_the_box(network, seed):
    rng = np.random.default_rng(seed)
    lo = rng.random(network.n_inputs) * 0.5
    hi = lo + rng.random(network.n_inputs) * 0.5 * (rng.random(network.n_inputs) < 0.8)
    region = InputRegion.box(lo, hi)
    bounds = interval_bounds(network, region)
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
    assert_contains(bounds, network, corners)
    assert_contains(bounds, network, ((lo + hi) / 2)[None, :])


def test_first_layer_interval_bounds_are_tight_at_corners(rng):
    """For an affine layer of a box, the interval bounds are attained at corners (up to widening)."""
    network = random_network(rng, [5, 7, 2], 0.4)
    region = InputRegion.box(np.zeros(5), np.ones(5))
    bounds = interval_bounds(network, region)
    corners = np.array(list(itertools.product((0.0, 1.0), repeat=5)))
    z = network.pre_activations(corners)[0]
    np.testing.assert_allclose(z.min(axis=0), bounds.lower[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(z.max(axis=0), bounds.upper[0], rtol=1e-9, atol=1e-12)


@st.composite
def badly_scaled_networks(draw):
    """Weights spanning 1e-8…1e8 in magnitude, with rows built to cancel."""
    rng = np.random.default_rng(draw(seeds))
    widths = [draw(st.integers(2, 5)), draw(st.integers(2, 6)), draw(st.integers(2, 6)), 2]
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        magnitude = 10.0 ** rng.uniform(-8, 8, size=(fan_out, fan_in))
        w = magnitude * rng.choice([-1.0, 1.0], size=(fan_out, fan_in))
        # Near-cancelling pairs: w_j1 ≈ −w_j2 (1 + tiny), and duplicated rows that differ slightly.
        for j in range(fan_out):
            if fan_in >= 2 and rng.random() < 0.5:
                w[j, 1] = -w[j, 0] * (1.0 + rng.choice([0.0, 1e-15, 1e-9]))
        if fan_out >= 2 and rng.random() < 0.5:
            w[1] = w[0] * (1.0 + 1e-12)
        b = 10.0 ** rng.uniform(-8, 8, size=fan_out) * rng.choice([-1.0, 1.0], size=fan_out)
        weights.append(w)
        biases.append(b)
    spec = InputSpec.create(widths[0], -1.0, 1.0)
    return Network.from_arrays(weights, biases, spec)


@given(badly_scaled_networks(), seeds, st.sampled_from([0.0, 1e-12, 1e-6, 0.1]))
def test_widening_is_sound_for_badly_scaled_weights(network, seed, radius):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, size=network.n_inputs)
    x0[0] = 0.3  # an input value that is not a dyadic rational
    region = ball_region(network, x0, "linf", radius)
    bounds = interval_bounds(network, region)
    for k in range(len(network.layers)):
        assert np.all(np.isfinite(bounds.lower[k])) and np.all(bounds.lower[k] <= bounds.upper[k])
    points = sample_region(region, rng, 30)
    assert_contains(bounds, network, points)
    for x in [x0, region.lower, region.upper, *points[:3]]:
        assert_contains_exactly(bounds, network, x)


def cancelling_network() -> tuple[Network, np.ndarray]:
    """1e8-scale neurons whose difference is O(1) at the point ``x``: on the degenerate box
    ``{x}`` rounding is the only slack there is."""
    x = np.array([0.1, 0.7, 0.3])
    w1 = np.array([[1e8, 1e8, -3e7], [1e8, 1e8, -3e7 + 1e-7], [-1e8, 3.3, 1e-8]])
    w2 = np.array([[1.0, -1.0, 0.0], [1e8, -1e8, 1.0]])
    w3 = np.array([[1.0, 1e-8], [-1e8, 1.0]])
    network = Network.from_arrays(
        [w1, w2, w3], [np.array([0.3, 0.3, 1e7]), np.array([1e-9, -0.1]), np.zeros(2)]
    )
    return network, x


def test_degenerate_box_bounds_contain_exact_value_under_cancellation():
    network, x = cancelling_network()
    region = InputRegion.box(x, x)
    bounds = interval_bounds(network, region)
    assert_contains_exactly(bounds, network, x)
    assert_contains(bounds, network, x[None, :])
    # The widening is small, relative to the magnitude of the terms: not a blanket tolerance.
    width = bounds.upper[0] - bounds.lower[0]
    magnitude = abs(network.layers[0].weight) @ np.abs(x) + np.abs(network.layers[0].bias)
    assert np.all(width <= 1e-11 * magnitude)


def test_interval_layer_keeps_explicit_zeros_harmless():
    dense = np.array([[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    stored = sp.csr_matrix((dense.ravel(), np.tile(np.arange(3), 2), [0, 3, 6]), shape=(2, 3))
    assert stored.nnz == 6
    lo, hi = interval_layer(stored, np.array([0.5, -0.25]), np.zeros(3), np.ones(3))
    assert lo[0] <= -1.5 <= -1.5 + 1e-9 and 1.5 <= hi[0] <= 1.5 + 1e-9
    assert lo[1] <= -0.25 <= hi[1] and hi[1] - lo[1] < 1e-12


@given(sparse_networks(), seeds, st.sampled_from(["linf", "l1"]))
def test_classification_counts_are_consistent(network, seed, norm):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, float(rng.choice([0.02, 0.2, 1.0])))
    bounds = interval_bounds(network, region)
    total = 0
    for k, layer in enumerate(network.layers):
        lo, hi = bounds.lower[k], bounds.upper[k]
        inactive, active, unstable = bounds.stably_inactive(k), bounds.stably_active(k), bounds.unstable(k)
        if layer.activation == "relu":
            assert np.array_equal(unstable, (lo < 0) & (hi > 0))
            # every neuron is exactly one of the three, except l = u = 0 (both stable kinds)
            assert np.all(inactive | active | unstable)
            assert not np.any(unstable & (inactive | active))
            assert np.all(~(inactive & active) | ((lo == 0) & (hi == 0)))
        else:
            assert not unstable.any()
        total += int(unstable.sum())
        post_lo, post_hi = bounds.post_activation(k)
        assert np.all(post_lo <= post_hi)
        if layer.activation == "relu":
            assert np.all(post_lo >= 0)
    assert bounds.n_unstable == total
    expected_width = sum(
        float(np.sum((bounds.upper[k] - bounds.lower[k])[bounds.unstable(k)]))
        for k in range(len(network.layers))
    )
    assert bounds.total_unstable_width == pytest.approx(expected_width)
    # Sampled activations agree with the classification: stable neurons never switch.
    values = network.pre_activations(sample_region(region, rng, 100))
    for k in range(len(network.layers)):
        assert np.all(values[k][:, bounds.stably_inactive(k)] <= 0)
        assert np.all(values[k][:, bounds.stably_active(k)] >= 0)


def test_relu_on_the_output_layer_and_identity_hidden_layers(rng):
    network = random_network(rng, [4, 6, 5, 3], 0.2, activations=["identity", "relu", "relu"])
    region = ball_region(network, rng.random(4), "linf", 0.3)
    bounds = interval_bounds(network, region)
    assert bounds.relu_layers == (False, True, True)
    assert not bounds.unstable(0).any()
    assert_contains(bounds, network, sample_region(region, rng, 300))
    # Identity post-activation bounds are the pre-activation bounds, negative part included.
    assert np.array_equal(bounds.post_activation(0)[0], bounds.lower[0])


def test_whole_layer_inactive_gives_constant_downstream_bounds(rng):
    network = random_network(rng, [3, 4, 5, 2], 0.0)
    layers = list(network.layers)
    from prunemip.network import Layer

    layers[0] = Layer.create(layers[0].weight, np.full(4, -100.0), "relu")
    network = Network(tuple(layers), network.input_spec)
    bounds = interval_bounds(network, InputRegion.box(np.zeros(3), np.ones(3)))
    assert bounds.stably_inactive(0).all()
    expected = np.maximum(layers[1].bias, 0.0)
    post_lo, post_hi = bounds.post_activation(1)
    np.testing.assert_allclose(post_lo, expected, atol=1e-12)
    np.testing.assert_allclose(post_hi, expected, atol=1e-12)


def test_overflowing_bounds_are_an_error_not_nan():
    """Regression: weights large enough to overflow made NaN bounds that the encoder called unstable."""
    network = Network.from_arrays(
        [np.full((3, 3), 1e200), np.full((2, 3), 1e200)],
        [np.zeros(3), np.zeros(2)],
        InputSpec.create(3, -1, 1),
    )
    region = InputRegion.box(-np.ones(3), np.ones(3))
    with pytest.raises(PrunemipError, match="layer 1") as error:
        interval_bounds(network, region)
    assert "\n" not in str(error.value)
    with pytest.raises(PrunemipError):
        encode(network, region)
