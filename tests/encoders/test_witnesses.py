"""Witnessed instability: a floor under every sound bounds method, exact on the first layer."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prunemip.encoders.bounds.interval import interval_bounds
from prunemip.encoders.bounds.linear import linear_bounds
from prunemip.encoders.bounds.witnesses import witnessed_unstable
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import compute_bounds
from prunemip.solvers.methods import BOUNDS_METHODS
from tests.conftest import ball_region, l1_ball_lp_maximum, norms, scaled, seeds, sparse_networks
from tests.solvers.test_bounds_pipeline import FAST


@given(seeds, st.integers(2, 12), norms, st.sampled_from([0.05, 0.5, 3.0]))
def test_first_layer_maximisers_are_in_the_region_and_reach_the_lp_maximum(seed, n, norm, radius):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(4, n)) * (rng.random((4, n)) < 0.8)
    x0 = rng.random(n)
    region = InputRegion.ball(norm, x0, radius, 0.0, 1.0)
    points = region.maximisers(weight)
    for row, x in enumerate(points):
        assert region.contains(x, tol=1e-12)
        if norm == "linf":  # max over a box: each coordinate at the end its weight points to
            exact = np.sum(np.maximum(weight[row] * region.lower, weight[row] * region.upper))
        else:
            exact = l1_ball_lp_maximum(weight[row], x0, radius)
        assert abs(weight[row] @ x - exact) <= 1e-9


@settings(max_examples=scaled(25))
@given(
    sparse_networks(max_inputs=6, max_width=8),
    seeds,
    norms,
    st.sampled_from([0.02, 0.1, 0.5, 2.0]),
    st.sampled_from(BOUNDS_METHODS),
)
def test_no_sound_bounds_make_a_witnessed_neuron_stable(network, seed, norm, radius, method):
    """The witnessed range lies inside every method's bounds, so what it proves unstable
    stays unstable under each of them."""
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    bounds = compute_bounds(network, region, method, options=FAST)
    witnessed = witnessed_unstable(network, region, bounds, steps=10, samples=16, seed=seed)
    for k, high, low, proved in zip(
        witnessed.layers, witnessed.highest, witnessed.lowest, witnessed.proved, strict=True
    ):
        assert np.all(bounds.lower[k] <= low) and np.all(low <= high) and np.all(high <= bounds.upper[k])
        assert not np.any(proved & ~bounds.unstable(k))
    assert witnessed.n_proved <= bounds.n_unstable


@given(sparse_networks(max_inputs=8, max_width=10), seeds, norms, st.sampled_from([0.05, 0.3, 2.0]))
def test_the_first_layer_count_is_exact(network, seed, norm, radius):
    """On the first layer the intervals (a box) and the linear relaxation (L1 ball: the
    exact knapsack) are exact up to their rounding widening: the witnesses match them."""
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    exact = linear_bounds(network, region) if norm == "l1" else interval_bounds(network, region)
    witnessed = witnessed_unstable(network, region, steps=0, samples=0)
    clear = (exact.lower[0] < -1e-6) & (exact.upper[0] > 1e-6)  # away from the rounding margin
    unstable = exact.unstable(0)
    np.testing.assert_array_equal(witnessed.proved[0][clear], unstable[clear])
