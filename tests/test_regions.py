"""Input regions: construction, membership, projections, sampling, the support function
and steepest ascent, each against an independent reference (brute force, exact rationals,
scipy)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize

from prunemip.errors import PrunemipError
from prunemip.regions import Ascent, InputRegion
from tests.conftest import assert_one_line, norms, seeds

radii = st.sampled_from([0.0, 0.05, 0.4, 1.5, 20.0])
UNIT_ROUNDOFF = 2.0**-53


def random_region(rng: np.random.Generator, n: int, kind: str, radius: float) -> InputRegion:
    """A box, or a ball around a random point of a random input box ``[lo, hi]``."""
    lo = rng.uniform(-2.0, 1.0, n)
    hi = lo + rng.uniform(0.0, 3.0, n) * (rng.random(n) < 0.9)  # some inputs fixed
    if kind == "box":
        return InputRegion.box(lo, hi)
    return InputRegion.ball(kind, lo + rng.random(n) * (hi - lo), radius, lo, hi)


def gamma(n: int) -> float:
    return n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)


def exact_maximum(region: InputRegion, c: np.ndarray) -> Fraction:
    """max c·x over the region in rational arithmetic: each coordinate at its best end (box),
    or the greedy fractional knapsack on the exact rooms (L1 ball ∩ box)."""
    lo, hi = [Fraction(v) for v in region.lower], [Fraction(v) for v in region.upper]
    weights = [Fraction(v) for v in c]
    if region.is_box:
        return sum((max(w * a, w * b) for w, a, b in zip(weights, lo, hi, strict=True)), Fraction(0))
    x0 = [Fraction(v) for v in region.center]
    total = sum((w * x for w, x in zip(weights, x0, strict=True)), Fraction(0))
    budget = Fraction(region.radius)
    for i in sorted(range(len(weights)), key=lambda i: -abs(weights[i])):
        room = (hi[i] - x0[i]) if weights[i] > 0 else (x0[i] - lo[i])
        take = min(max(room, Fraction(0)), budget)
        total += abs(weights[i]) * take
        budget -= take
    return total


def vertices(region: InputRegion, rng: np.random.Generator) -> np.ndarray:
    """Box corners (all of them for a small box), else maximisers of random directions."""
    if region.is_box and region.size <= 8:
        return np.array(list(itertools.product(*zip(region.lower, region.upper, strict=True))))
    return region.maximisers(rng.normal(size=(64, region.size)))


# ----------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: InputRegion.ball("l2", np.zeros(2), 0.1, 0.0, 1.0), "unknown norm"),
        (lambda: InputRegion.ball("linf", np.zeros(2), -0.1, 0.0, 1.0), "radius"),
        (lambda: InputRegion.ball("l1", np.zeros(2), np.nan, 0.0, 1.0), "radius"),
        (lambda: InputRegion.ball("l1", np.zeros(2), np.inf, 0.0, 1.0), "radius"),
        (lambda: InputRegion.ball("linf", np.array([0.5, np.nan]), 0.1, 0.0, 1.0), "NaN"),
        (
            lambda: InputRegion.ball("linf", np.array([0.5, 1.5]), 0.1, 0.0, 1.0),
            "input 1 of the point is 1.5",
        ),
        (lambda: InputRegion.box(np.zeros(3), np.array([1.0, np.inf, 1.0])), "input 1 is unbounded"),
        (lambda: InputRegion.box(np.zeros(2), np.array([1.0, -1.0])), "input 1 has an empty range"),
        (lambda: InputRegion.box(np.zeros(2), np.ones(3)), "2 entries, upper bound 3"),
    ],
)
def test_bad_regions_are_one_line_errors(build, fragment):
    with pytest.raises(PrunemipError) as error:
        build()
    assert_one_line(error, fragment)


def test_a_ball_is_intersected_with_the_input_box():
    x0 = np.array([0.1, 0.5, 0.95])
    region = InputRegion.ball("l1", x0, 0.2, 0.0, np.array([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(region.lower, np.maximum(0.0, x0 - 0.2))
    np.testing.assert_array_equal(region.upper, np.minimum(1.0, x0 + 0.2))
    np.testing.assert_allclose(region.lower, [0.0, 0.3, 0.75])
    np.testing.assert_allclose(region.upper, [0.3, 0.7, 1.0])
    assert not region.is_box and InputRegion.ball("linf", x0, 0.2, 0.0, 1.0).is_box
    assert region.describe() == "L1 ball of radius 0.2" and region.size == 3
    x0[0] = 0.9  # the region keeps its own copy
    np.testing.assert_array_equal(region.center, [0.1, 0.5, 0.95])
    # A ball is bounded even where the input range is not.
    open_range = InputRegion.ball("linf", np.zeros(2), 0.1, -np.inf, np.array([np.inf, 0.05]))
    np.testing.assert_array_equal(open_range.lower, [-0.1, -0.1])
    np.testing.assert_array_equal(open_range.upper, [0.1, 0.05])


def test_membership_and_distances():
    region = InputRegion.ball("l1", np.array([0.5, 0.5]), 0.3, 0.0, 1.0)
    assert region.contains([0.7, 0.4]) and region.contains(np.array([[0.75], [0.5]]))
    assert not region.contains([0.7, 0.3])  # ‖d‖₁ = 0.4 > 0.3
    assert region.contains([0.7, 0.3], tol=0.11) and not region.contains([0.7, 0.3], tol=0.09)
    assert not region.contains([0.5, 0.5, 0.5])  # wrong size
    assert region.distance([0.7, 0.4]) == pytest.approx({"linf": 0.2, "l1": 0.3})
    box = InputRegion.box(np.zeros(2), np.ones(2))
    assert box.distance([0.3, 0.9]) == {"linf": 0.0, "l1": 0.0} and box.contains([0.0, 1.0])
    np.testing.assert_array_equal(box.midpoint, [0.5, 0.5])


@given(seeds, st.integers(1, 6), norms, radii)
def test_budget_split_describes_the_l1_row(seed, n, norm, radius):
    """x ∈ region ⇔ x = x0 + p − n with p, n within their bounds and Σ(p + n) ≤ δ."""
    rng = np.random.default_rng(seed)
    region = random_region(rng, n, norm, radius)
    split = region.budget_split()
    if norm == "linf":
        assert split is None
        return
    x0, p_upper, n_upper = split
    np.testing.assert_array_equal(x0, region.center)
    for x in region.sample(rng, 20):
        p, m = np.maximum(x - x0, 0.0), np.maximum(x0 - x, 0.0)
        assert np.all(p <= p_upper + 1e-12) and np.all(m <= n_upper + 1e-12)
        assert np.sum(p + m) <= region.radius + 1e-9


# ----------------------------------------------------------------------- projections
def scipy_projection(region: InputRegion, v: np.ndarray) -> np.ndarray:
    """argmin ‖x − v‖² over the region by SLSQP on x = x0 + p − n."""
    x0, n = region.center, region.size
    bounds = [(0.0, u) for u in region.upper - x0] + [(0.0, u) for u in x0 - region.lower]
    result = minimize(
        lambda z: np.sum((x0 + z[:n] - z[n:] - v) ** 2),
        np.zeros(2 * n),
        jac=lambda z: np.concatenate([2 * (x0 + z[:n] - z[n:] - v), -2 * (x0 + z[:n] - z[n:] - v)]),
        bounds=bounds,
        constraints=[
            {"type": "ineq", "fun": lambda z: region.radius - np.sum(z), "jac": lambda z: -np.ones(2 * n)}
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return x0 + result.x[:n] - result.x[n:]


@given(seeds, st.integers(1, 6), st.sampled_from(["box", "linf", "l1"]), radii)
def test_nearest_is_the_euclidean_projection(seed, n, kind, radius):
    """It lands in the region, is idempotent, satisfies the projection's variational
    inequality (v − p)·(y − p) ≤ 0 for every y of the region, and matches scipy."""
    rng = np.random.default_rng(seed)
    region = random_region(rng, n, kind, radius)
    points = region.midpoint + rng.normal(size=(6, n)) * rng.choice([0.05, 1.0, 10.0])
    projected = region.nearest(points)
    np.testing.assert_allclose(region.nearest(projected), projected, atol=1e-12)
    others = np.vstack([region.sample(rng, 50), vertices(region, rng)])
    for v, p in zip(points, projected, strict=True):
        assert region.contains(p, tol=1e-9)
        assert np.all((others - p) @ (v - p) <= 1e-9 * (1.0 + np.linalg.norm(v - p)))
        if region.is_box:
            np.testing.assert_array_equal(p, np.clip(v, region.lower, region.upper))
        else:
            np.testing.assert_allclose(p, scipy_projection(region, v), atol=1e-5)


@given(seeds, st.integers(1, 30), st.sampled_from([1e-9, 1e-3, 0.5]), st.sampled_from([1.0, 1e4]))
def test_project_lands_exactly_in_the_region(seed, n, radius, scale):
    """The shrinking pull passes the float membership test even for a tiny radius around a
    large centre, and leaves points of the region where they are."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-scale, scale, n)
    region = InputRegion.ball("l1", x0, radius, -2 * scale, 2 * scale)
    for x in x0 + rng.normal(size=(5, n)) * radius * 3:
        assert region.contains(region.project(x))
    inside = region.sample(rng, 5)
    for x in inside[[region.contains(x) for x in inside]]:
        np.testing.assert_array_equal(region.project(x), x)


@given(seeds, st.integers(1, 8), st.sampled_from(["box", "linf", "l1"]), radii)
def test_samples_lie_in_the_region(seed, n, kind, radius):
    rng = np.random.default_rng(seed)
    region = random_region(rng, n, kind, radius)
    points = region.sample(rng, 40)
    assert points.shape == (40, n)
    assert all(region.contains(x, tol=0.0 if region.is_box else 1e-12) for x in points)


# ----------------------------------------------------------------------- support function
@given(seeds, st.integers(1, 8), st.sampled_from(["box", "linf", "l1"]), radii)
def test_support_is_the_maximum_and_its_error_bound_is_sound(seed, n, kind, radius):
    """value + γ·magnitude ≥ the exact (rational) maximum, value is that maximum up to
    rounding, it dominates every sample and is reached by a maximiser, and it equals
    the maximum over the corners of a box and an LP's maximum over the L1 ball ∩ box."""
    rng = np.random.default_rng(seed)
    region = random_region(rng, n, kind, radius)
    rows = rng.normal(size=(5, n)) * (rng.random((5, n)) < 0.7) * rng.choice([1e-3, 1.0, 1e3])
    value, magnitude, terms = region.support(rows)
    maximisers = region.maximisers(rows)
    samples = np.vstack([region.sample(rng, 200), vertices(region, rng)])
    for c, v, mag, best in zip(rows, value, magnitude, maximisers, strict=True):
        exact = exact_maximum(region, c)
        assert Fraction(v) + Fraction(gamma(terms) * mag) >= exact
        assert float(exact) == pytest.approx(v, rel=1e-9, abs=1e-9 * (1.0 + mag))
        assert np.all(samples @ c <= v + 1e-9 * (1.0 + mag))
        assert region.contains(best, tol=1e-12) and c @ best == pytest.approx(v, rel=1e-9, abs=1e-9)
        if region.is_box and n <= 8:
            assert np.max(vertices(region, rng) @ c) == pytest.approx(v, rel=1e-12, abs=1e-12)
        elif not region.is_box:
            x0 = region.center
            lp = linprog(
                -np.concatenate([c, -c]),
                A_ub=np.ones((1, 2 * n)),
                b_ub=[region.radius],
                bounds=[(0, u) for u in region.upper - x0] + [(0, u) for u in x0 - region.lower],
                method="highs",
            )
            assert c @ x0 - lp.fun == pytest.approx(v, rel=1e-7, abs=1e-7)


@given(seeds, st.integers(1, 8), st.sampled_from(["box", "l1"]), radii)
def test_torch_support_has_the_same_value(seed, n, kind, radius):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    region = random_region(rng, n, kind, radius)
    rows = rng.normal(size=(4, n))
    expected = region.support(rows).value
    got = region.support_torch(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------- steepest ascent
@given(seeds, st.integers(1, 12), st.integers(1, 12))
def test_steepest_ascent_directions_have_unit_dual_norm(seed, n, k):
    rng = np.random.default_rng(seed)
    k = min(k, n)
    gradient = rng.normal(size=(3, n))
    box = random_region(rng, n, "linf", 0.3)
    np.testing.assert_array_equal(box.steepest_ascent(gradient, k), np.sign(gradient))
    ball = random_region(rng, n, "l1", 0.3)
    direction = ball.steepest_ascent(gradient, k)
    np.testing.assert_allclose(np.abs(direction).sum(axis=1), 1.0)
    for g, d in zip(gradient, direction, strict=True):
        moved = np.flatnonzero(d)
        assert moved.size == k and np.all(np.sign(d[moved]) == np.sign(g[moved]))
        assert np.min(np.abs(g[moved])) >= np.max(np.abs(np.delete(g, moved)), initial=0.0)
    # One coordinate: the L1 ball's exact steepest ascent, g·d = ‖g‖∞.
    np.testing.assert_allclose(
        np.sum(gradient * ball.steepest_ascent(gradient, 1), axis=1), np.max(np.abs(gradient), axis=1)
    )


@given(seeds, st.integers(1, 8), st.sampled_from(["box", "linf", "l1"]), radii)
def test_ascent_stays_in_the_region_and_climbs_a_linear_objective_in_a_box(seed, n, kind, radius):
    """Sign steps from the midpoint reach the box's maximum of c·x (the steps add up to more
    than the widest side); every iterate stays in the region."""
    rng = np.random.default_rng(seed)
    region = random_region(rng, n, kind, radius)
    c = rng.normal(size=(2, n))
    ascent = Ascent.of(region)
    x = np.tile(region.midpoint, (2, 1))
    steps = 20
    for step in range(steps):
        x = ascent.step(x, c, step, steps)
        assert all(region.contains(point, tol=1e-9) for point in x)
    if region.is_box:
        np.testing.assert_allclose(np.sum(c * x, axis=1), region.support(c).value, rtol=1e-12, atol=1e-12)
    assert 1 <= ascent.coordinates <= n
