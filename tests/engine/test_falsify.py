"""The gradient attack stays in the region and feeds the MIP; no pipeline ever calls an input
robust where brute force finds an attack."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from prunemip.engine.attack import AttackOptions, find_adversarial_example, target_order
from prunemip.engine.falsify import PgdOptions, pgd_attack
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import ObbtOptions, compute_bounds
from tests.conftest import (
    EXACT,
    ball_region,
    brute_force_margin,
    norms,
    random_network,
    sample_region,
    scaled,
    seeds,
    sparse_networks,
    tiny_networks,
)
from tests.engine.test_attack import check_result, near_decision_boundary


@given(st.integers(1, 40), seeds, st.sampled_from([0.0, 1e-6, 0.3, 2.0, 50.0]))
def test_l1_box_projection_is_feasible_and_a_projection(n, seed, radius):
    rng = np.random.default_rng(seed)
    x0 = rng.random(n)
    region = InputRegion.ball("l1", x0, radius, 0.0, 1.0)
    points = x0 + rng.normal(size=(5, n)) * rng.choice([0.01, 1.0, 10.0])
    projected = region.nearest(points)
    # Reference: bisection on the threshold λ of d = clip(soft_λ(v − x0), lo − x0, hi − x0).
    v = points - x0
    lam_low, lam_high = np.zeros(len(v)), np.abs(v).max(axis=1) + 1.0
    clip = lambda lam: np.clip(np.sign(v) * np.maximum(np.abs(v) - lam[:, None], 0), -x0, 1 - x0)  # noqa: E731
    for _ in range(200):
        lam = (lam_low + lam_high) / 2
        over = np.abs(clip(lam)).sum(axis=1) > radius
        lam_low, lam_high = np.where(over, lam, lam_low), np.where(over, lam_high, lam)
    np.testing.assert_allclose(projected, x0 + clip(lam_high), atol=1e-9)
    for p, v in zip(projected, points, strict=True):
        assert region.contains(p, tol=1e-9)
        # no sampled feasible point is closer to v than the projection (up to bisection accuracy)
        others = sample_region(region, rng, 50)
        assert np.linalg.norm(p - v) <= np.min(np.linalg.norm(others - v, axis=1)) + 1e-6


@given(sparse_networks(max_hidden_layers=2), seeds, norms, st.sampled_from([0.05, 0.3, 1.0]))
def test_gradient_attack_points_lie_in_the_region_with_their_margins(network, seed, norm, radius):
    rng = np.random.default_rng(seed)
    x0 = rng.random(network.n_inputs)
    label = int(network.predict(x0))
    region = ball_region(network, x0, norm, radius)
    targets = target_order(network.forward(x0), label)
    result = pgd_attack(network, region, label, targets, PgdOptions(steps=10, restarts=2))
    assert set(result.points) == set(targets)
    for t, point in result.points.items():
        assert region.contains(point, tol=1e-9)
        logits = network.forward(point)
        assert result.margins[t] == pytest.approx(logits[t] - logits[label], abs=1e-12)
    clean = network.forward(x0)
    assert result.best_margin >= max(clean[t] - clean[label] for t in targets) - 1e-12


def test_gradient_attack_finds_an_easy_adversarial_and_seeds_the_mip(rng):
    checked = found = 0
    for _ in range(40):
        network = random_network(rng, [10, 20, 20, 3], 0.3, weight_scale=3.0, bias_scale=0.1)
        x0 = rng.random(10)
        label = int(network.predict(x0))
        region = ball_region(network, x0, "linf", 0.1)
        if np.all(network.predict(sample_region(region, rng, 2000)) == label):
            continue
        checked += 1
        quick = find_adversarial_example(network, x0, label, region)
        assert quick.status == "adversarial"
        check_result(network, quick)
        found += quick.targets == ()  # answered by the gradient attack alone
        optimize = find_adversarial_example(
            network, x0, label, region, options=AttackOptions(mode="optimize")
        )
        plain = find_adversarial_example(
            network, x0, label, region, options=AttackOptions(mode="optimize", pgd=False, bounds="ia")
        )
        assert optimize.best_margin == pytest.approx(plain.best_margin, abs=1e-6)
        if checked == 4:
            break
    assert checked == 4 and found >= 2


# ----------------------------------------------------------------------- robust is never wrong
@settings(max_examples=scaled(30))
@given(
    tiny_networks(max_relus=6),
    seeds,
    norms,
    st.sampled_from([0.05, 0.2, 0.5]),
    st.booleans(),
    st.sampled_from(["ia", "linear", "alpha", "lp", "mip", "auto"]),
    st.booleans(),
)
def test_robust_is_never_claimed_against_brute_force_with_any_bounds(
    network, seed, norm, radius, near_boundary, method, pgd
):
    rng = np.random.default_rng(seed)
    x0 = near_decision_boundary(network, rng) if near_boundary else rng.random(network.n_inputs)
    label = int(network.predict(x0))
    region = ball_region(network, x0, norm, radius)
    result = find_adversarial_example(
        network,
        x0,
        label,
        region,
        options=AttackOptions(
            highs=EXACT, bounds=method, pgd=pgd, bounds_options=ObbtOptions(budget=2.0, time_per_mip=1.0)
        ),
    )
    check_result(network, result)
    optimum = max(
        brute_force_margin(network, region, t, label) for t in target_order(network.forward(x0), label)
    )
    event(f"{method}: {result.status}")
    if optimum > 1e-6:
        assert result.status == "adversarial"
    elif optimum < -1e-6:
        assert result.status == "robust"
    if result.status == "robust":
        assert optimum <= 1e-9


def test_bounds_given_as_a_name_or_precomputed(rng):
    network = random_network(rng, [6, 10, 10, 3], 0.0)
    x0 = rng.random(6)
    label = int(network.predict(x0))
    region = ball_region(network, x0, "linf", 0.05)
    named = find_adversarial_example(
        network, x0, label, region, options=AttackOptions(bounds="lp", pgd=False, mode="optimize")
    )
    stages = [stage["method"] for stage in named.encoding.bounds_stages]
    assert stages == ["ia", "linear", "lp"]
    bounds = compute_bounds(network, region, "linear")
    given_bounds = find_adversarial_example(
        network, x0, label, region, options=AttackOptions(bounds=bounds, pgd=False)
    )
    assert [s["method"] for s in given_bounds.encoding.bounds_stages] == ["ia", "linear"]
    assert named.status == given_bounds.status
    # Decide mode stops refining once no target is open: robust by the linear bounds, no LP, no MIP.
    decided = find_adversarial_example(
        network, x0, label, ball_region(network, x0, "linf", 1e-4), options=AttackOptions(bounds="lp")
    )
    assert decided.status == "robust" and decided.pgd_seconds == 0.0
    assert [s["method"] for s in decided.encoding.bounds_stages] == ["ia", "linear"]
    assert all(o.solve.nodes == 0 and o.solve.solve_seconds == 0.0 for o in decided.targets)


@pytest.mark.parametrize("pays", [True, False])
def test_auto_tightens_by_lp_before_the_first_mip_and_solves_each_target_once(rng, monkeypatch, pays):
    """``auto`` runs its LP stage (when it pays) before any MIP, and never re-solves a target."""
    import prunemip.engine.targets as targets
    import prunemip.solvers.bounds as pipeline

    monkeypatch.setattr(pipeline, "lp_pays", lambda bounds: pays)
    real = targets.TargetMip.solve
    calls = []

    def recorded(mip, options, start=None):
        calls.append((mip.target, [s["method"] for s in mip.objective_model.stats.bounds_stages]))
        return real(mip, options, start)

    monkeypatch.setattr(targets.TargetMip, "solve", recorded)
    network = random_network(rng, [3, 4, 4, 3], 0.0, weight_scale=2.0)
    solved = 0
    for _ in range(30):
        calls.clear()
        x0 = rng.random(3)
        label = int(network.predict(x0))
        region = ball_region(network, x0, "linf", 0.3)
        result = find_adversarial_example(
            network, x0, label, region, options=AttackOptions(pgd=False, highs=EXACT)
        )
        check_result(network, result)
        stages = [s["method"] for s in result.encoding.bounds_stages]
        if not calls:
            continue
        solved += 1
        order = target_order(network.forward(x0), label)
        optimum = max(brute_force_margin(network, region, t, label) for t in order)
        assert result.status == ("adversarial" if optimum > 1e-6 else "robust")
        assert stages == (["ia", "linear", "lp"] if pays else ["ia", "linear"])
        assert all(seen == stages for _, seen in calls)  # every MIP saw the final bounds
        targets = [t for t, _ in calls]
        assert len(targets) == len(set(targets))
    assert solved > 0


@pytest.mark.parametrize(
    ("mode", "pgd", "extra", "expected"),
    [
        ("decide", True, {}, {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False}),
        (
            "decide",
            True,
            {"mip_heuristic_run_rens": True},
            {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": True},
        ),
        ("decide", False, {}, {}),
        ("optimize", True, {}, {}),
    ],
)
def test_sub_mip_heuristics_are_off_only_in_decide_mode_after_the_gradient_attack(
    rng, monkeypatch, mode, pgd, extra, expected
):
    """The gradient attack has searched the region, so decide-mode MIPs skip RINS and RENS."""
    import prunemip.engine.targets as targets
    from prunemip.solvers.highs import HighsOptions

    real = targets.TargetMip.solve
    seen = []

    def recorded(mip, options, start=None):
        seen.append(dict(options.extra))
        return real(mip, options, start)

    monkeypatch.setattr(targets.TargetMip, "solve", recorded)
    network = random_network(rng, [3, 4, 4, 3], 0.0, weight_scale=2.0)
    options = HighsOptions(time_limit=30, threads=1, extra=extra)
    for _ in range(30):
        x0 = rng.random(3)
        label = int(network.predict(x0))
        region = ball_region(network, x0, "linf", 0.3)
        result = find_adversarial_example(
            network, x0, label, region, options=AttackOptions(mode=mode, pgd=pgd, bounds="ia", highs=options)
        )
        check_result(network, result)
        if seen:
            break
    assert seen and all(given == expected for given in seen)
