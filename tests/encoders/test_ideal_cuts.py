"""Ideal-formulation cuts (Anderson et al. 2020): every row holds at every lifted point of the
region, separation finds the most violated member of the family, and the LP stage with cuts
stays sound and is never looser than without them."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prunemip.encoders.bigm import encode
from prunemip.encoders.ideal_cuts import IdealCutSeparator
from prunemip.encoders.mip_model import NeuronStatus
from prunemip.solvers.bounds import ObbtOptions, compute_bounds
from prunemip.solvers.highs import solve
from prunemip.solvers.result import SolveStatus
from tests.conftest import EXACT, ball_region, norms, random_network, sample_region, seeds, sparse_networks
from tests.encoders.test_bounds import assert_contains

#: No LP skipped for a small possible gain, so that both runs solve every LP they could gain by.
EVERY_LP = ObbtOptions(time_per_lp=1.0, budget=10.0, filter_tolerance=0.0)
EVERY_LP_CUTS = replace(EVERY_LP, cut_rounds=4)


def _relaxation_points(model, rng: np.random.Generator, count: int) -> np.ndarray:
    """Points of the LP relaxation's box that violate many cuts: every column uniform in its
    bounds, every post-activation at its upper bound."""
    lo, hi = model.col_lower, model.col_upper
    points = lo + rng.random((count, model.n_cols)) * (hi - lo)
    for encoding in model.layers:
        present = encoding.output_column >= 0
        points[:, encoding.output_column[present]] = hi[encoding.output_column[present]]
    return points


@settings(max_examples=40)
@given(sparse_networks(max_inputs=6, max_width=8), seeds, norms, st.sampled_from([0.05, 0.3, 2.0]))
def test_every_cut_holds_at_every_lifted_point_of_the_region(network, seed, norm, radius):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    bounds = compute_bounds(network, region, "linear")
    model = encode(network, region, bounds)
    separator = IdealCutSeparator(model)
    lifted = np.array([model.solution_from_input(x) for x in sample_region(region, rng, 200)])
    for point in _relaxation_points(model, rng, 20):
        cuts = separator.separate(point)
        if cuts is None:
            continue
        # The cut separates the point it was built from ...
        assert np.all(cuts.matrix @ point > cuts.upper)
        # ... and no point of the exact network, in exact float64 terms.
        activity = (cuts.matrix @ lifted.T).T
        assert np.all(activity <= cuts.upper + 1e-9 * (1.0 + np.abs(cuts.upper)))


def test_separation_finds_the_most_violated_subset():
    rng = np.random.default_rng(4)
    network = random_network(rng, [5, 6, 4, 2])
    region = ball_region(network, rng.random(5), "linf", 0.4)
    model = encode(network, region, compute_bounds(network, region, "linear"))
    encoding, layer = model.layers[0], network.layers[0]
    unstable = np.flatnonzero(encoding.status == NeuronStatus.UNSTABLE)
    assert unstable.size > 0
    separator = IdealCutSeparator(model, tolerance=1e-12)
    lo, hi = model.col_lower[model.input_columns], model.col_upper[model.input_columns]
    checked = 0
    for point in _relaxation_points(model, rng, 30):
        v = point[model.input_columns]
        for j in unstable:
            w, b = layer.weight[j].toarray().ravel(), layer.bias[j]
            low, high = np.where(w >= 0, lo, hi), np.where(w >= 0, hi, lo)
            delta = point[encoding.binary_column[j]]
            # y as high as the big-M rows allow: the triangle relaxation's top (I = ∅ and I = all)
            pre = float(w @ v + b)
            y = min(float(w @ high + b) * delta, pre - float(w @ low + b) * (1 - delta))
            point[encoding.output_column[j]] = y
            subsets = [s for size in range(6) for s in itertools.combinations(range(5), size)]
            inside = [sum(w[i] * (v[i] - low[i] * (1 - delta)) for i in subset) for subset in subsets]
            outside = [
                (b + sum(w[i] * high[i] for i in range(5) if i not in subset)) * delta for subset in subsets
            ]
            best = max(y - (a + c) for a, c in zip(inside, outside, strict=True))
            cuts = separator.separate(point)
            row = None if cuts is None else _row_of(cuts, encoding.output_column[j])
            if best > 1e-9:
                assert row is not None
                violation = float((cuts.matrix @ point)[row] - cuts.upper[row])
                assert np.isclose(violation, best, rtol=1e-9, atol=1e-9)
                checked += 1
            else:
                assert row is None
    assert checked > 0


def _assert_nested_up_to_rounding(inner, outer) -> None:
    """``inner`` at least as tight as ``outer`` where it matters: every neuron stable in ``outer``
    is stable in ``inner``, and the bounds of the neurons ``inner`` leaves unstable are nested up
    to the safe bounds' rounding allowance. (The LP stage stops tightening a neuron once one side
    makes it stable, so the other side of a neuron only ``inner`` stabilises may stay wider.)
    Judged on layers 0 and 1 only: layer 1 is the first LP layer and both runs start it from the
    same bounds; deeper layers are re-bounded by CROWN in between, which is not monotone in the
    intermediate bounds it is given."""
    for k in range(min(2, len(inner.lower))):
        unstable = (inner.lower[k] < 0) & (inner.upper[k] > 0)
        assert not np.any(unstable & ~((outer.lower[k] < 0) & (outer.upper[k] > 0))), k
        slack = 1e-7 * (1.0 + np.abs(outer.lower[k]) + np.abs(outer.upper[k]))
        assert np.all(inner.lower[k][unstable] >= (outer.lower[k] - slack)[unstable]), k
        assert np.all(inner.upper[k][unstable] <= (outer.upper[k] + slack)[unstable]), k


def _row_of(cuts, output_column: int) -> int | None:
    rows = np.flatnonzero(cuts.matrix[:, output_column].toarray().ravel() == 1.0)
    return int(rows[0]) if rows.size else None


@settings(max_examples=25, deadline=None)
@given(sparse_networks(max_inputs=6, max_width=8), seeds, norms, st.sampled_from([0.05, 0.3, 2.0]))
def test_lp_with_cuts_is_sound_and_never_looser(network, seed, norm, radius):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    plain = compute_bounds(network, region, "lp", options=EVERY_LP)
    cut = compute_bounds(network, region, "lp", options=EVERY_LP_CUTS)
    assert_contains(cut, network, sample_region(region, rng, 300))
    _assert_nested_up_to_rounding(cut, plain)


def test_cuts_tighten_a_deep_box_region_and_keep_the_mip_optimum():
    rng = np.random.default_rng(0)
    network = random_network(rng, [8, 12, 12, 12, 3])
    region = ball_region(network, rng.random(8), "linf", 0.2)
    plain = compute_bounds(network, region, "lp", options=EVERY_LP)
    cut = compute_bounds(network, region, "lp", options=EVERY_LP_CUTS)
    assert cut.stages[-1].details["cuts"] > 0
    assert cut.n_unstable < plain.n_unstable and cut.total_unstable_width < plain.total_unstable_width
    _assert_nested_up_to_rounding(cut, plain)
    optima = []
    for bounds in (compute_bounds(network, region, "ia"), cut):
        result = solve(encode(network, region, bounds).with_margin_objective(1, 0), EXACT)
        assert result.status == SolveStatus.OPTIMAL
        optima.append(result.objective)
    assert np.isclose(optima[0], optima[1], rtol=1e-6, atol=1e-6)
