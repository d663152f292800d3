"""Linear-relaxation, LP and MIP bounds: sound, never looser than interval arithmetic, and the MIP
optimum does not depend on which sound bounds built it."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import interval_bounds
from prunemip.encoders.bounds.linear import alpha_bounds, linear_bounds, linear_upper_bound, relu_relaxation
from prunemip.encoders.bounds.witnesses import witnessed_unstable
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network
from prunemip.regions import InputRegion
from prunemip.solvers import bounds as pipeline
from prunemip.solvers.bounds import ObbtOptions, compute_bounds, continue_bounds
from prunemip.solvers.highs import _cutoff_readings, solve
from prunemip.solvers.methods import BOUNDS_CHOICES, BOUNDS_METHODS
from prunemip.solvers.obbt.lp import _LpData, lp_tighten, safe_lower_bound
from prunemip.solvers.obbt.mip import mip_tighten
from prunemip.solvers.result import SolveStatus
from tests.conftest import (
    EXACT,
    ball_region,
    brute_force_margin,
    exact_pre_activations,
    l1_ball_lp_maximum,
    norms,
    random_network,
    sample_region,
    scaled,
    seeds,
    sparse_networks,
    tiny_networks,
)
from tests.encoders.test_bounds import (
    assert_contains,
    assert_contains_exactly,
    badly_scaled_networks,
    cancelling_network,
)

FAST = ObbtOptions(time_per_lp=1.0, budget=5.0, time_per_mip=2.0)
#: The LP stage with ideal-formulation cuts (``encoders.ideal_cuts``).
FAST_CUTS = ObbtOptions(time_per_lp=1.0, budget=10.0, cut_rounds=4)
#: The stages each method runs ("alpha" is not a stage of "lp"/"mip").
STAGES = {
    "ia": ["ia"],
    "linear": ["ia", "linear"],
    "alpha": ["ia", "linear", "alpha"],
    "lp": ["ia", "linear", "lp"],
    "mip": ["ia", "linear", "lp", "mip"],
}


def assert_nested(inner, outer):
    """``inner`` is at least as tight as ``outer`` on every neuron."""
    for k in range(len(inner.lower)):
        assert np.all(inner.lower[k] >= outer.lower[k]), k
        assert np.all(inner.upper[k] <= outer.upper[k]), k


# ----------------------------------------------------------------------- soundness
@settings(max_examples=scaled(25))
@given(
    sparse_networks(max_inputs=6, max_width=8),
    seeds,
    norms,
    st.sampled_from([0.0, 0.02, 0.1, 0.5, 2.0]),
    st.sampled_from(BOUNDS_METHODS),
)
def test_every_method_contains_sampled_activations(network, seed, norm, radius, method):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    bounds = compute_bounds(network, region, method, options=FAST)
    points = sample_region(region, rng, 300)
    assert_contains(bounds, network, points)
    assert bounds.method == method and [s.method for s in bounds.stages] == STAGES[method]
    assert_nested(bounds, interval_bounds(network, region))
    for stage in bounds.stages:
        assert stage.unstable >= 0 and stage.total_width >= 0 and stage.seconds >= 0
    # each stage only tightens
    assert [s.unstable for s in bounds.stages] == sorted((s.unstable for s in bounds.stages), reverse=True)


@given(sparse_networks(max_inputs=7), seeds, norms, st.sampled_from([0.01, 0.1, 0.5, 2.0]))
def test_linear_bounds_are_sound_and_never_looser_than_intervals(network, seed, norm, radius):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    ia = interval_bounds(network, region)
    linear = linear_bounds(network, region)
    assert_nested(linear, ia)
    assert_contains(linear, network, sample_region(region, rng, 300))
    for x in sample_region(region, rng, 2)[:2]:
        assert_contains_exactly(linear, network, x)
    assert linear.n_unstable <= ia.n_unstable


@settings(max_examples=scaled(30))
@given(
    badly_scaled_networks(),
    seeds,
    st.sampled_from([0.0, 1e-12, 1e-6, 0.1]),
    norms,
    st.sampled_from(BOUNDS_METHODS),
)
def test_every_method_contains_exact_values_for_badly_scaled_weights(network, seed, radius, norm, method):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, size=network.n_inputs)
    x0[0] = 0.3
    region = ball_region(network, x0, norm, radius)
    bounds = compute_bounds(network, region, method, options=FAST)
    for k in range(len(network.layers)):
        assert np.all(bounds.lower[k] <= bounds.upper[k])
    for x in [x0, region.lower, region.upper, *sample_region(region, rng, 3)[:3]]:
        if region.contains(x, tol=0.0):
            assert_contains_exactly(bounds, network, x)


def test_degenerate_region_cancellation_linear_and_lp():
    """1e8-scale weights cancelling to O(1) on a single point: only rounding separates the bounds."""
    network, x = cancelling_network()
    region = InputRegion.box(x, x)
    for method in ("linear", "lp"):
        bounds = compute_bounds(network, region, method, options=FAST)
        assert_contains_exactly(bounds, network, x)


def test_relu_relaxation_lines_are_valid_in_float():
    rng = np.random.default_rng(3)
    lower = -np.abs(rng.normal(size=2000)) * 10.0 ** rng.uniform(-12, 6, size=2000)
    upper = np.abs(rng.normal(size=2000)) * 10.0 ** rng.uniform(-12, 6, size=2000)
    slope, intercept, low_slope = relu_relaxation(lower, upper)
    for z in (lower, upper):  # the ReLU is convex: the chord dominates it iff it does at both ends
        exact_ok = [
            Fraction(float(a)) * Fraction(float(v)) + Fraction(float(t))
            >= max(Fraction(float(v)), Fraction(0))
            for a, v, t in zip(slope, z, intercept, strict=True)
        ]
        assert all(exact_ok)
    assert set(np.unique(low_slope)) <= {0.0, 1.0}


# ----------------------------------------------------------------------- tightness
def test_linear_bounds_on_a_deep_net_beat_intervals(rng):
    network = random_network(rng, [20, 30, 30, 30, 5], 0.0)
    region = ball_region(network, rng.random(20), "linf", 0.05)
    ia, linear = interval_bounds(network, region), linear_bounds(network, region)
    assert linear.n_unstable < ia.n_unstable
    assert linear.total_unstable_width < 0.5 * ia.total_unstable_width


@given(sparse_networks(max_inputs=6, max_width=8), seeds, norms, st.sampled_from([0.05, 0.5, 2.0]))
def test_any_lower_slopes_give_sound_bounds(network, seed, norm, radius):
    """Every slope in [0, 1] (per row, values outside are clipped) gives a valid lower line."""
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    base = linear_bounds(network, region)
    points = sample_region(region, rng, 300)
    values = network.pre_activations(points)
    exact = [exact_pre_activations(network, x) for x in points[:2]]
    for k in range(1, len(network.layers)):
        n = network.layers[k].n_out
        C = np.vstack([np.eye(n), -np.eye(n), rng.normal(size=(3, n))])
        slopes = [rng.uniform(-0.5, 1.5, size=(C.shape[0], layer.n_out)) for layer in network.layers[:k]]
        bound = linear_upper_bound(network, region, k, C, base.lower, base.upper, slopes)
        assert np.all(values[k] <= bound[:n]) and np.all(-values[k] <= bound[n : 2 * n])
        for z in exact:  # the general rows, against the exact (rational) pre-activations
            for row, value in zip(C, bound, strict=True):
                assert sum(Fraction(float(c)) * v for c, v in zip(row, z[k], strict=True)) <= Fraction(value)


def test_alpha_bounds_never_looser_than_crown_and_tighter_on_a_deep_net(rng):
    network = random_network(rng, [20, 30, 30, 30, 5], 0.0)
    widths = []
    for norm, radius in (("linf", 0.1), ("l1", 1.0)):
        region = ball_region(network, rng.random(20), norm, radius)
        linear = linear_bounds(network, region)
        alpha = alpha_bounds(network, region, linear)
        assert_nested(alpha, linear)
        assert alpha.total_unstable_width < linear.total_unstable_width
        assert alpha.n_unstable <= linear.n_unstable
        assert [s.method for s in alpha.stages] == ["ia", "linear", "alpha"]
        assert_contains(alpha, network, sample_region(region, rng, 2000))
        widths.append((alpha.total_unstable_width, linear.total_unstable_width))
    assert sum(a for a, _ in widths) < 0.98 * sum(b for _, b in widths)


def test_alpha_bounds_keep_a_network_too_large_to_optimise(rng, monkeypatch):
    import prunemip.encoders.bounds.linear as linear_module

    network = random_network(rng, [6, 8, 8, 2], 0.0)
    region = ball_region(network, rng.random(6), "linf", 0.3)
    linear = linear_bounds(network, region)
    monkeypatch.setattr(linear_module, "ALPHA_MAX_WEIGHTS", 10)
    alpha = alpha_bounds(network, region, linear)
    assert alpha.stages[-1].details == {"skipped": "network too large"}
    for k in range(len(network.layers)):
        np.testing.assert_array_equal(alpha.lower[k], linear.lower[k])
        np.testing.assert_array_equal(alpha.upper[k], linear.upper[k])


@given(seeds, st.integers(2, 12), st.sampled_from([0.05, 0.5, 3.0]))
def test_l1_first_layer_bound_is_the_exact_lp_maximum(seed, n, radius):
    """max c·x over {‖x − x0‖₁ ≤ δ} ∩ box, by the greedy threshold, equals the LP optimum."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(3, n)) * (rng.random((3, n)) < 0.8)
    network = Network.from_arrays([c], [np.zeros(3)], InputSpec.create(n, 0, 1), ["identity"])
    x0 = rng.random(n)
    region = InputRegion.ball("l1", x0, radius, 0.0, 1.0)
    upper = linear_upper_bound(network, region, 0, np.eye(3), [], [])
    for row in range(3):
        exact = l1_ball_lp_maximum(c[row], x0, radius)
        assert exact - 1e-9 <= upper[row] <= exact + 1e-9


def test_lp_and_mip_tighten_a_three_layer_net(rng):
    network = random_network(rng, [8, 16, 16, 16, 3], 0.0, weight_scale=2.0)
    region = ball_region(network, rng.random(8), "linf", 0.15)
    linear = compute_bounds(network, region, "linear")
    lp = compute_bounds(network, region, "lp", options=FAST)
    mip = compute_bounds(network, region, "mip", options=FAST)
    assert_nested(lp, linear)
    assert_nested(mip, lp)
    assert mip.total_unstable_width <= lp.total_unstable_width <= linear.total_unstable_width
    assert lp.total_unstable_width < linear.total_unstable_width
    details = lp.stages[-1].details
    assert details["lps_solved"] > 0 and details["budget_exhausted"] is False
    points = sample_region(region, rng, 2000)
    for bounds in (lp, mip):
        assert_contains(bounds, network, points)


def test_lp_budget_keeps_what_was_found(rng):
    network = random_network(rng, [10, 30, 30, 3], 0.0, weight_scale=2.0)
    region = ball_region(network, rng.random(10), "linf", 0.2)
    linear = compute_bounds(network, region, "linear")
    cut = lp_tighten(network, region, linear, ObbtOptions(budget=0.0))
    assert cut.stages[-1].details["budget_exhausted"] is True
    assert cut.stages[-1].details["lps_solved"] == 0
    for k in range(len(network.layers)):
        np.testing.assert_array_equal(cut.lower[k], linear.lower[k])
    assert_contains(cut, network, sample_region(region, rng, 200))


def test_a_cancelled_lp_stage_keeps_what_was_found(rng):
    """``ObbtOptions.cancel`` ends the stage between LPs (and inside one) as its budget does."""
    network = random_network(rng, [10, 30, 30, 3], 0.0, weight_scale=2.0)
    region = ball_region(network, rng.random(10), "linf", 0.2)
    linear = compute_bounds(network, region, "linear")
    polls = []

    def cancel() -> bool:
        polls.append(True)
        return len(polls) > 5

    cut = lp_tighten(network, region, linear, ObbtOptions(cancel=cancel))
    details = cut.stages[-1].details
    assert details["budget_exhausted"] is True and details["lps_solved"] <= 5
    assert_contains(cut, network, sample_region(region, rng, 200))
    full = lp_tighten(network, region, linear)
    assert full.stages[-1].details["lps_solved"] > details["lps_solved"]


def test_safe_bound_holds_for_any_multipliers(rng):
    """Neumaier–Shcherbina: garbage duals give a weak bound, never a wrong one; HiGHS's give the optimum."""
    network = random_network(rng, [5, 8, 8, 2], 0.0)
    region = ball_region(network, rng.random(5), "l1", 0.5)
    model = encode(network, region, linear_bounds(network, region))
    from dataclasses import replace

    relaxed = replace(model, integrality=np.zeros(model.n_cols, dtype=bool))
    data = _LpData.of(relaxed)
    column = int(model.output_columns[0])
    cost = np.zeros(model.n_cols)
    cost[column] = 1.0
    result = solve(relaxed.with_objective(cost, maximize=False), EXACT)
    assert result.status == SolveStatus.OPTIMAL
    # the true minimum over the relaxation is result.objective (up to HiGHS's tolerances)
    for _ in range(20):
        y = rng.normal(size=model.n_rows) * rng.choice([0.0, 1e-3, 1.0, 1e3])
        assert safe_lower_bound(data, cost, y) <= result.objective + 1e-6
    import highspy

    from prunemip.solvers.highs import to_highs

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    to_highs(relaxed.with_objective(cost, maximize=False), highs)
    highs.run()
    tight = safe_lower_bound(data, cost, np.asarray(highs.getSolution().row_dual))
    assert tight <= highs.getInfo().objective_function_value + 1e-9
    assert tight >= highs.getInfo().objective_function_value - 1e-6


# ----------------------------------------------------------------------- MIP optimum
@settings(max_examples=scaled(20))
@given(tiny_networks(max_relus=7), seeds, norms, st.sampled_from([0.1, 0.5, 1.0]), st.data())
def test_mip_optimum_is_the_same_with_every_bounds_method(network, seed, norm, radius, data):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    label = data.draw(st.integers(0, network.n_outputs - 1))
    target = data.draw(st.integers(0, network.n_outputs - 2))
    target += target >= label
    expected = brute_force_margin(network, region, target, label)
    for method, options in [*((m, FAST) for m in BOUNDS_METHODS), ("lp", FAST_CUTS)]:
        bounds = compute_bounds(network, region, method, options=options)
        model = encode(network, region, bounds).with_margin_objective(target, label)
        result = solve(model, EXACT)
        assert result.status == SolveStatus.OPTIMAL, method
        # HiGHS accepts points within its feasibility tolerance; the optimum may move by that much.
        tol = EXACT.feasibility_tolerance
        slack = model.tolerance_effect(tol, tol) + 1e-6 * (1.0 + abs(expected))
        assert abs(result.objective - expected) <= slack, method


def test_unknown_method_is_a_one_line_error(rng):
    network = random_network(rng, [3, 4, 2], 0.0)
    region = ball_region(network, np.full(3, 0.5), "linf", 0.1)
    with pytest.raises(PrunemipError, match="unknown bounds method 'crown'") as error:
        compute_bounds(network, region, "crown")
    assert "\n" not in str(error.value)


def test_the_pipeline_binds_a_stage_to_exactly_the_registry_methods():
    """A method added to the registry (``solvers/methods.py``) without a stage in the pipeline,
    or a stage without a registry line, fails here; every chain of stages starts at ``ia``."""
    assert sorted(pipeline.STAGES) == sorted(BOUNDS_CHOICES)
    for name, (after, stage) in pipeline.STAGES.items():
        assert callable(stage), name
        assert (after is None) == (name == "ia") and (after is None or after in pipeline.STAGES), name


def test_continue_bounds_refuses_bounds_its_method_does_not_start_from(rng):
    network = random_network(rng, [3, 4, 2], 0.0)
    region = ball_region(network, np.full(3, 0.5), "linf", 0.1)
    with pytest.raises(PrunemipError, match="'ia' does not run after 'linear'"):
        continue_bounds(network, region, compute_bounds(network, region, "linear"), "ia")


def test_the_old_obbt_path_still_computes_bounds_and_warns(rng):
    """``prunemip.solvers.obbt.compute_bounds`` (the README's path until the split) forwards to
    :mod:`prunemip.solvers.bounds` with a ``DeprecationWarning``; only the names it held are forwarded."""
    import prunemip.solvers.obbt as obbt

    network = random_network(rng, [3, 4, 2], 0.0)
    region = ball_region(network, np.full(3, 0.5), "linf", 0.1)
    with pytest.warns(DeprecationWarning, match="prunemip.solvers.bounds.compute_bounds"):
        from prunemip.solvers.obbt import compute_bounds as old
    assert old is compute_bounds
    assert old(network, region, "linear").method == "linear"
    with pytest.warns(DeprecationWarning, match="prunemip.solvers.obbt.lp.lp_tighten"):
        assert obbt.lp_tighten is lp_tighten
    with pytest.raises(AttributeError, match="no attribute 'interval_bounds'"):
        _ = obbt.interval_bounds


def test_constant_folding_keeps_the_rows_a_relaxation_of_the_exact_network():
    """Constants 0.1 + 0.2 (not exact in binary) folded through two layers: the rows admit
    the exact rational values, so a bound derived from them holds for the exact network."""
    w0 = np.array([[0.0, 0.0], [1.0, -1.0]])
    w1 = np.array([[0.7, 1.0], [0.3, 0.0]])  # neuron 1 of layer 1 is constant 0.3·0.1 + 0.2
    w2 = np.array([[1.0, 1.0 / 3.0], [1.0, 0.0]])
    network = Network.from_arrays(
        [w0, w1, w2], [np.array([0.1, 0.0]), np.array([0.0, 0.2]), np.zeros(2)], InputSpec.create(2, 0, 1)
    )
    region = ball_region(network, np.array([0.5, 0.5]), "linf", 0.5)
    model = encode(network, region)
    constant = model.layers[1]
    assert constant.status[1] == 3  # CONSTANT
    exact = Fraction(0.3) * Fraction(0.1) + Fraction(0.2)
    # logit 0 = y1_0 + (1/3)·exact: its row's bias interval must contain the exact product
    rows = [i for i, name in enumerate(model.row_names()) if name == "lin3_0"]
    assert len(rows) == 1
    third = Fraction(1.0 / 3.0) * exact
    assert model.row_lower[rows[0]] <= third <= model.row_upper[rows[0]]
    for x in itertools.product((0.0, 1.0), repeat=2):
        values = exact_pre_activations(network, np.array(x))
        assert model.constraint_violation(model.solution_from_input(np.array(x))) <= 1e-12
        assert values[1][1] == exact


def test_every_mip_of_the_mip_stage_gets_its_own_time_limit(rng, monkeypatch):
    """HiGHS's MIP solver measures ``time_limit`` on a clock that restarts with each run, its LP
    solver on the object's total run time: each bound MIP runs on a fresh clock, with at most
    ``time_per_mip`` (a limit of total run time + ``time_per_mip`` grew with every MIP)."""
    import highspy

    limits: list[tuple[float, float]] = []
    _cutoff_readings()  # decide mode's one-off probe of HiGHS runs here, not among the recorded MIPs

    class RecordingHighs(highspy.Highs):
        def run(self):
            value = self.getOptionValue("time_limit")
            limits.append((self.getRunTime(), float(value[-1] if isinstance(value, tuple) else value)))
            return super().run()

    monkeypatch.setattr(highspy, "Highs", RecordingHighs)
    network = random_network(rng, [8, 16, 16, 3], 0.0, weight_scale=2.0)
    region = ball_region(network, rng.random(8), "linf", 0.3)
    options = ObbtOptions(time_per_lp=1.0, budget=30.0, time_per_mip=0.5)
    lp = compute_bounds(network, region, "lp", options=options)
    limits.clear()
    mip = mip_tighten(network, region, lp, options)
    assert mip.stages[-1].details["mips_solved"] >= 2
    assert len(limits) >= 2
    for clock, limit in limits:
        assert clock == 0.0 and 0.0 < limit <= options.time_per_mip


def _exact_range(network: Network, region: InputRegion, layer: int, neuron: int) -> tuple[float, float]:
    """min and max of ẑ_neuron of ``layer`` over the region, by brute force over the earlier
    layers' activation patterns (the network cut after ``layer``, the neuron as output 0)."""
    row = network.layers[layer].weight.toarray()[neuron]
    bias = network.layers[layer].bias[neuron]
    extremes = []
    for sign in (1.0, -1.0):
        head = Layer.create(
            np.vstack([sign * row, np.zeros_like(row)]), np.array([sign * bias, 0.0]), "identity"
        )
        cut = Network((*network.layers[:layer], head), network.input_spec)
        extremes.append(sign * brute_force_margin(cut, region, 0, 1))
    return extremes[1], extremes[0]


@pytest.mark.parametrize(("seed", "norm", "radius"), [(9, "linf", 0.3), (15, "l1", 0.6)])
def test_mip_stage_decides_the_stability_of_the_last_hidden_layer(seed, norm, radius):
    """Every neuron of the last hidden layer that is stable over the region (its exact range,
    by brute force, clears 0 by more than HiGHS's tolerances move it) is stable after the MIP
    stage, with or without its width MIPs, and the bounds still contain the exact range. On
    these instances LP leaves 3 (L∞) and 2 (L1) such neurons unstable, both signs among them."""
    rng = np.random.default_rng(seed)
    network = random_network(rng, [4, 8, 8, 3], 0.0, weight_scale=2.0)
    region = ball_region(network, rng.random(4), norm, radius)
    exact = [_exact_range(network, region, 1, j) for j in range(8)]
    stable = [j for j, (low, high) in enumerate(exact) if high < -1e-3 or low > 1e-3]
    lp = compute_bounds(network, region, "lp", options=FAST)
    assert any(lp.lower[1][j] < 0.0 < lp.upper[1][j] for j in stable)
    for stability_only in (True, False):
        options = ObbtOptions(
            time_per_lp=5.0, time_per_mip=30.0, budget=120.0, mip_stability_only=stability_only
        )
        bounds = mip_tighten(network, region, lp, options)
        for j, (low, high) in enumerate(exact):
            assert bounds.lower[1][j] <= low + 1e-9 * (1 + abs(low))
            assert bounds.upper[1][j] >= high - 1e-9 * (1 + abs(high))
        assert all(not bounds.lower[1][j] < 0.0 < bounds.upper[1][j] for j in stable)


def test_mip_stage_solves_no_stability_mip_for_a_witnessed_neuron():
    """A neuron that inputs of the region show on both sides of 0 can never be stable: with
    ``mip_stability_only`` it gets no MIP, and every neuron the witnesses leave open gets one,
    on the side that could make it stable."""
    rng = np.random.default_rng(5)
    network = random_network(rng, [6, 16, 16, 3], 0.0, weight_scale=2.0)
    region = ball_region(network, rng.random(6), "l1", 0.5)
    options = ObbtOptions(time_per_lp=2.0, time_per_mip=10.0, budget=60.0, mip_stability_only=True)
    lp = compute_bounds(network, region, "lp", options=options)
    proved = witnessed_unstable(network, region, lp).proved[-1]
    open_neurons = int(np.sum(lp.unstable(1) & ~proved))
    assert np.sum(lp.unstable(1) & proved) > 0 and open_neurons >= 2
    mip = mip_tighten(network, region, lp, options)
    details = mip.stages[-1].details
    assert details["mips_solved"] + details["mips_not_optimal"] == open_neurons
    assert details["stabilized"] >= 1
    assert int(np.sum(mip.unstable(1))) == int(np.sum(lp.unstable(1))) - details["stabilized"]
    assert_contains(mip, network, sample_region(region, rng, 2000))
