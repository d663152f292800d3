"""Adversarial search: witnesses are real, robust verdicts are never contradicted, errors are clean."""

from __future__ import annotations

import functools
import json
import time

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from prunemip.encoders.bigm import encode
from prunemip.engine.attack import (
    ROBUST_TOLERANCE,
    AttackOptions,
    check_witness,
    find_adversarial_example,
    target_order,
)
from prunemip.engine.mip import verdict
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import compute_bounds
from prunemip.solvers.highs import HighsOptions
from prunemip.solvers.result import SolveResult, SolveStatus
from tests.conftest import (
    EXACT,
    assert_one_line,
    ball_region,
    brute_force_margin,
    norms,
    random_network,
    sample_region,
    seeds,
    sparse_networks,
    tiny_networks,
)

modes = st.sampled_from(["decide", "optimize"])


def check_result(network, result):
    """Every witness is in the region and its margin is the forward pass's."""
    witnesses = [o.witness for o in result.targets if o.witness is not None]
    if result.witness is not None:
        witnesses.append(result.witness)
    for witness in witnesses:
        assert result.region.contains(witness.x)
        assert witness.in_region
        logits = network.forward(witness.x)
        assert witness.margin == logits[witness.target] - logits[result.label]
        assert witness.predicted == int(np.argmax(logits))
        assert witness.distance == result.region.distance(witness.x)
        if witness.is_adversarial:
            assert witness.predicted != result.label
    if result.status == "adversarial":
        assert result.found and result.witness.is_adversarial
    json.dumps(result.to_dict())


@given(sparse_networks(max_hidden_layers=2, max_width=8), seeds, norms, modes, st.booleans())
def test_witnesses_are_in_the_region_with_forward_pass_margins(network, seed, norm, mode, targeted):
    rng = np.random.default_rng(seed)
    x0 = rng.random(network.n_inputs)
    label = int(network.predict(x0))
    target = target_order(network.forward(x0), label)[-1] if targeted else None
    radius = float(rng.choice([0.05, 0.3, 1.0]))
    result = find_adversarial_example(
        network,
        x0,
        label,
        norm=norm,
        radius=radius,
        target=target,
        options=AttackOptions(mode=mode, highs=EXACT),
    )
    assert result.status in ("adversarial", "robust")
    check_result(network, result)
    if mode == "optimize":
        for outcome in result.targets:
            # the verified margin is the MIP optimum, up to solver tolerances
            assert outcome.witness.margin == pytest.approx(outcome.solve.objective, abs=1e-6)
    if targeted:
        if result.targets:
            assert [o.target for o in result.targets] == [target]
        else:  # decide mode: the gradient attack found it, no MIP was needed
            assert mode == "decide" and result.status == "adversarial" and result.witness.target == target


def near_decision_boundary(network, rng):
    """A point a bisection away from a decision boundary (or a random point if there is none)."""
    points = rng.random((256, network.n_inputs))
    predictions = network.predict(points)
    if np.all(predictions == predictions[0]):
        return points[0]
    a, b = points[0], points[int(np.argmax(predictions != predictions[0]))]
    for _ in range(40):
        middle = (a + b) / 2
        if network.predict(middle) == predictions[0]:
            a = middle
        else:
            b = middle
    return a


@given(tiny_networks(max_relus=6), seeds, norms, modes, st.sampled_from([0.05, 0.2, 0.5]), st.booleans())
def test_robust_is_never_claimed_when_brute_force_finds_an_adversarial(
    network, seed, norm, mode, radius, near_boundary
):
    rng = np.random.default_rng(seed)
    x0 = near_decision_boundary(network, rng) if near_boundary else rng.random(network.n_inputs)
    label = int(network.predict(x0))
    region = ball_region(network, x0, norm, radius)
    result = find_adversarial_example(
        network, x0, label, region, options=AttackOptions(mode=mode, highs=EXACT)
    )
    check_result(network, result)
    optimum = max(
        brute_force_margin(network, region, t, label) for t in target_order(network.forward(x0), label)
    )
    sampled = network.forward(sample_region(region, rng, 500))
    sampled_margin = np.max(np.delete(sampled, label, axis=1) - sampled[:, [label]])
    assert sampled_margin <= optimum + 1e-9  # the brute force is a true maximum
    event(f"status: {result.status}")
    if optimum > 1e-6 or sampled_margin > 0:
        assert result.status == "adversarial"
        assert result.witness.margin > 0
    elif optimum < -1e-6:
        assert result.status == "robust"
        assert not result.found
    if mode == "optimize" and result.status == "adversarial":
        assert result.best_margin == pytest.approx(optimum, abs=1e-6)


def test_sampled_adversarial_is_found_on_a_larger_net(rng):
    """Dense random sampling on a 10-20-20-4 net: whenever a sample is adversarial, the MIP agrees."""
    network = random_network(rng, [10, 20, 20, 4], 0.5, weight_scale=3.0, bias_scale=0.1)
    checked = 0
    for _ in range(6):
        x0 = rng.random(10)
        label = int(network.predict(x0))
        for norm, radius in (("linf", 0.15), ("l1", 1.0)):
            region = ball_region(network, x0, norm, radius)
            result = find_adversarial_example(
                network, x0, label, region, options=AttackOptions(highs=HighsOptions(threads=1))
            )
            check_result(network, result)
            assert result.status in ("adversarial", "robust")
            logits = network.forward(sample_region(region, rng, 2000))
            if np.any(np.argmax(logits, axis=1) != label):
                checked += 1
                assert result.status == "adversarial"
    assert checked > 0


def test_untargeted_order_runner_up_first_and_decide_stops_at_first_adversarial():
    # Logits: x-independent biases (3, 1, 2, 0) plus class 1's logit rising with x.
    w = np.zeros((4, 1))
    w[1, 0] = 4.0
    network = Network.from_arrays([w], [np.array([3.0, 1.0, 2.0, 0.0])], InputSpec.create(1, 0, 1))
    x0 = np.array([0.0])
    assert target_order(network.forward(x0), 0) == [2, 1, 3]
    decide = find_adversarial_example(
        network, x0, 0, norm="linf", radius=1.0, options=AttackOptions(mode="decide", pgd=False, bab=False)
    )
    # The bounds refute targets 2 and 3 before any MIP; target 1's MIP finds the example.
    assert [o.target for o in decide.targets] == [2, 1, 3]
    assert [o.status for o in decide.targets] == ["robust", "adversarial", "robust"]
    without_mip = [o.solve.nodes == 0 and o.solve.solve_seconds == 0.0 for o in decide.targets]
    assert without_mip == [True, False, True]
    assert decide.status == "adversarial" and decide.witness.target == 1
    optimize = find_adversarial_example(
        network, x0, 0, norm="linf", radius=1.0, options=AttackOptions(mode="optimize")
    )
    assert [o.target for o in optimize.targets] == [2, 1, 3]
    assert optimize.witness.target == 1 and optimize.best_margin == pytest.approx(2.0)
    robust = find_adversarial_example(
        network, x0, 0, norm="linf", radius=0.1, options=AttackOptions(mode="decide")
    )
    assert robust.status == "robust" and [o.target for o in robust.targets] == [2, 1, 3]
    targeted = find_adversarial_example(network, x0, 0, norm="linf", radius=1.0, target=3)
    assert targeted.status == "robust" and [o.target for o in targeted.targets] == [3]
    # With the gradient attack (the default), decide mode needs no MIP here: its point is
    # adversarial, and re-checked like every witness.
    quick = find_adversarial_example(
        network, x0, 0, norm="linf", radius=1.0, options=AttackOptions(mode="decide")
    )
    assert quick.status == "adversarial" and quick.targets == () and quick.witness.target == 1
    assert quick.witness.margin == pytest.approx(2.0) and quick.pgd_seconds > 0


def test_target_order_ties_and_label_exclusion():
    logits = np.array([1.0, 5.0, 5.0, -2.0, 3.0])
    assert target_order(logits, 1) == [2, 4, 0, 3]
    assert target_order(logits, 3) == [1, 2, 4, 0]
    assert target_order(np.zeros(3), 0) == [1, 2]


def test_misclassified_input_short_circuits(rng):
    network = random_network(rng, [4, 6, 3], 0.0)
    x0 = rng.random(4)
    prediction = int(network.predict(x0))
    label = (prediction + 1) % 3
    result = find_adversarial_example(network, x0, label, norm="linf", radius=0.1)
    assert result.status == "misclassified" and result.targets == () and result.encoding is None
    assert result.witness is not None and result.witness.target == prediction
    assert result.witness.margin > 0 and result.found
    np.testing.assert_array_equal(result.witness.x, x0)
    json.dumps(result.to_dict())


def test_eps_zero_is_robust_for_a_correct_prediction(rng):
    network = random_network(rng, [4, 6, 3], 0.0)
    x0 = rng.random(4)
    label = int(network.predict(x0))
    for norm in ("linf", "l1"):
        result = find_adversarial_example(
            network, x0, label, norm=norm, radius=0.0, options=AttackOptions(mode="optimize")
        )
        assert result.status == "robust" and result.encoding.binaries == 0
        logits = network.forward(x0)
        assert result.best_margin == pytest.approx(np.max(np.delete(logits, label)) - logits[label])


def test_start_points_seed_the_search(rng):
    network = random_network(rng, [6, 10, 3], 0.0)
    x0 = rng.random(6)
    label = int(network.predict(x0))
    region = ball_region(network, x0, "linf", 0.5)
    points = sample_region(region, rng, 300)
    adversarial = points[network.predict(points) != label]
    if adversarial.size == 0:
        pytest.skip("no sampled adversarial point for this seed")
    start = adversarial[0] + 10.0  # outside: projected into the region first
    result = find_adversarial_example(network, x0, label, region, start_points=[start])
    assert result.status == "adversarial"
    check_result(network, result)


def test_time_limit_is_shared_by_the_targets():
    rng = np.random.default_rng(0)
    network = random_network(rng, [64, 60, 60, 10], 0.0)
    x0 = rng.random(64)
    label = int(network.predict(x0))
    result = find_adversarial_example(
        network,
        x0,
        label,
        norm="linf",
        radius=0.1,
        options=AttackOptions(mode="optimize", highs=HighsOptions(time_limit=1.0), pgd=False),
    )
    assert result.status == "timeout"
    assert result.total_seconds < 5.0
    # An even share each: every target's MIP ran, in order, none finished adversarial.
    assert [o.target for o in result.targets] == target_order(network.forward(x0), label)
    assert {o.status for o in result.targets} <= {"timeout", "robust"}
    check_result(network, result)


def test_positive_solver_margin_without_a_verified_witness_is_settled(rng, monkeypatch):
    """Decide mode: a solver incumbent > 0 whose forward pass is not adversarial is re-solved."""
    import prunemip.engine.mip as mip

    network = random_network(rng, [3, 6, 3], 0.0)
    x0 = rng.random(3)
    label = int(network.predict(x0))
    calls = []
    real_solve = mip.solve

    def fake_then_real(model, options, start=None, decide=None, **hooks):
        calls.append(decide)
        if len(calls) == 1:  # claims margin 1 at the clean point, which is not adversarial
            return SolveResult(
                SolveStatus.DECIDED_ABOVE, "", 1.0, 1.0, 0.0, 0, 0, 0.0, None, 0.0, start, True
            )
        return real_solve(model, options, start=start, decide=decide, **hooks)

    monkeypatch.setattr(mip, "solve", fake_then_real)
    target = target_order(network.forward(x0), label)[0]
    # Interval bounds: the linear relaxation would prove this margin without any MIP.
    result = find_adversarial_example(
        network,
        x0,
        label,
        norm="linf",
        radius=0.0,
        target=target,
        options=AttackOptions(bounds="ia", bab=False),
    )
    assert calls[0] is not None and calls[0].target == 0.0 and calls[1] is None  # then it optimises
    assert result.status == "robust" and not result.found
    check_result(network, result)


LOOSE = {"mip_feasibility_tolerance": 0.05, "primal_feasibility_tolerance": 0.05}


def loose_mips(time_limit: float) -> AttackOptions:
    """Interval bounds, no gradient attack or branch and bound, HiGHS feasibility tolerances of 0.05."""
    highs = HighsOptions(time_limit=time_limit, extra=LOOSE)
    return AttackOptions(bounds="ia", pgd=False, bab=False, highs=highs)


def _spy_on_solves(monkeypatch, delay: float = 0.0) -> list[tuple[int, float, float | None, SolveResult]]:
    """Record (target class, feasibility tolerance, decide proof, result) per HiGHS solve,
    sleeping ``delay`` seconds after each."""
    import prunemip.engine.mip as mip

    calls = []
    real_solve = mip.solve

    def spy(model, options, start=None, decide=None, **hooks):
        target = list(model.output_columns).index(int(np.argmax(model.objective)))
        result = real_solve(model, options, start=start, decide=decide, **hooks)
        proof = None if decide is None else decide.proof
        calls.append((target, options.feasibility_tolerance, proof, result))
        time.sleep(delay)
        return result

    monkeypatch.setattr(mip, "solve", spy)
    return calls


@functools.cache
def _robust_instance_with_binaries(radius: float = 0.1):
    """A 4-6-6-3 net (12 ReLUs: brute force is exact) and an input whose L∞ ball leaves
    unstable neurons under interval bounds; found once (brute force is slow), shared read-only."""
    rng = np.random.default_rng(0)
    network = random_network(rng, [4, 6, 6, 3], 0.0)
    for _ in range(50):
        x0 = rng.random(4)
        label = int(network.predict(x0))
        region = ball_region(network, x0, "linf", radius)
        if encode_stats(network, region).binaries > 0:
            optima = [brute_force_margin(network, region, t, label) for t in range(3) if t != label]
            if max(optima) < 0:
                return network, x0, label, region, optima
    raise AssertionError("no instance found")


def encode_stats(network: Network, region: InputRegion):
    return encode(network, region, compute_bounds(network, region, "ia")).stats


def test_a_verdict_within_the_solver_tolerances_is_settled_with_tighter_ones(monkeypatch):
    """Regression (a 6x100 net: optimum −0.103, HiGHS's tolerances worth 0.118 of margin, so
    "unknown"): a finished MIP whose answer lies within what the tolerances can move the margin
    is solved again with 1000× tighter ones, and only their proof counts."""
    network, x0, label, region, optima = _robust_instance_with_binaries()
    target = target_order(network.forward(x0), label)[0]
    optimum = optima[[t for t in range(3) if t != label].index(target)]
    calls = _spy_on_solves(monkeypatch)
    result = find_adversarial_example(network, x0, label, region, target=target, options=loose_mips(20))
    outcome = result.targets[0]
    assert result.encoding.binaries > 0  # a branch-and-bound MIP, not an LP
    assert [tolerance for _, tolerance, _, _ in calls] == [0.05, pytest.approx(5e-5)]
    loose_tau, tight_tau = -calls[0][2], -calls[1][2]
    assert loose_tau > -optimum > tight_tau  # the loose solve could not prove it; the tight one can
    assert outcome.status == "robust" == result.status
    assert outcome.proof_tolerance == pytest.approx(tight_tau)
    assert outcome.solve.dual_bound <= -outcome.proof_tolerance
    solves = [result for *_, result in calls]
    assert outcome.solve.nodes == sum(s.nodes for s in solves)  # the effort of both solves
    assert outcome.solve.solve_seconds == pytest.approx(sum(s.solve_seconds for s in solves))
    check_result(network, result)


def test_unknown_targets_are_solved_again_after_every_target_had_its_first_solve(monkeypatch):
    """Untargeted: a re-solve never takes time from a target not yet solved once."""
    network, x0, label, region, _ = _robust_instance_with_binaries()
    calls = _spy_on_solves(monkeypatch)
    result = find_adversarial_example(network, x0, label, region, options=loose_mips(20))
    others = target_order(network.forward(x0), label)
    tolerances = [tolerance for _, tolerance, *_ in calls]
    first = tolerances.count(0.05)
    assert [t for t, *_ in calls[:first]] == others  # every target once with the loose tolerances,
    assert tolerances[first:] == [pytest.approx(5e-5)] * (len(calls) - first) != []  # then re-solves
    assert result.status == "robust" and all(o.status == "robust" for o in result.targets)
    check_result(network, result)


def test_no_second_solve_once_the_time_is_spent(monkeypatch):
    network, x0, label, region, _ = _robust_instance_with_binaries()
    target = target_order(network.forward(x0), label)[0]
    calls = _spy_on_solves(monkeypatch, delay=0.6)
    result = find_adversarial_example(network, x0, label, region, target=target, options=loose_mips(0.5))
    assert len(calls) == 1
    assert result.status == "unknown" and not result.found
    check_result(network, result)


# ----------------------------------------------------------------------- regressions
@given(
    st.integers(1, 800),
    seeds,
    st.sampled_from([0.0, 1e-9, 1e-6, 1e-3, 0.05, 1.0, 50.0]),
    st.sampled_from([0.01, 1.0, 100.0]),
)
def test_projection_lands_inside_the_region(n, seed, radius, spread):
    """Regression: for small L1 radii, rounding left projected points outside the ball, so
    true adversarial witnesses were discarded as out of region."""
    rng = np.random.default_rng(seed)
    x0 = rng.random(n)
    for norm in ("linf", "l1"):
        region = InputRegion.ball(norm, x0, radius, 0.0, 1.0)
        x = x0 + rng.normal(size=n) * max(radius, 1e-12) * spread
        projected = region.project(x)
        assert region.contains(projected)
        if region.contains(x):
            np.testing.assert_array_equal(projected, x)


def test_robust_needs_a_dual_bound_clear_of_zero():
    """Regression: an OPTIMAL incumbent ≤ 0 (or a decide-mode stop) with a positive final dual
    bound was reported robust, though a positive margin within the gap tolerance remained.
    A proven bound in (−tolerance, 0] is not a proof at the solver's precision either."""

    def result(status, objective, dual_bound):
        return SolveResult(status, "", objective, dual_bound, None, 0, 0, 0.0, None, 0.0, None)

    tolerance = ROBUST_TOLERANCE
    assert verdict(result(SolveStatus.OPTIMAL, -1e-7, 5e-7), tolerance) == "unknown"
    assert verdict(result(SolveStatus.DECIDED_AT_MOST, -0.17, 1.6e-12), tolerance) == "unknown"
    assert verdict(result(SolveStatus.OPTIMAL, -0.5, -0.49995), tolerance) == "unsat"
    assert verdict(result(SolveStatus.DECIDED_AT_MOST, None, -0.1), tolerance) == "unsat"
    assert verdict(result(SolveStatus.OPTIMAL, 0.0, 0.0), tolerance) == "unknown"
    assert verdict(result(SolveStatus.OPTIMAL, -1e-7, -1e-7), tolerance) == "unknown"
    assert verdict(result(SolveStatus.TIME_LIMIT, -1.0, 2.0), tolerance) == "timeout"


def test_tiny_positive_margin_is_not_reported_robust():
    """max |x1 − x2| − (0.6 − 1e-12) over [0.2, 0.8]² is +1e-12: never 'robust'."""
    w1 = np.array([[1.0, -1.0], [-1.0, 1.0], [0.3, 0.7]])
    w2 = np.array([[0.0, 0.0, 0.1], [1.0, 1.0, 0.0]])
    network = Network.from_arrays(
        [w1, w2], [np.array([0.0, 0.0, -0.5]), np.array([0.0, -(0.6 - 1e-12)])], InputSpec.create(2, 0, 1)
    )
    x0 = np.array([0.5, 0.5])
    for mode in ("decide", "optimize"):
        result = find_adversarial_example(
            network, x0, 0, norm="linf", radius=0.3, options=AttackOptions(mode=mode)
        )
        assert result.status != "robust"
        check_result(network, result)


def test_witness_check_projects_and_recomputes(rng):
    network = random_network(rng, [3, 5, 2], 0.0)
    x0 = np.full(3, 0.5)
    region = ball_region(network, x0, "l1", 0.2)
    witness = check_witness(network, region, np.array([2.0, -1.0, 0.5]), 1, 0)
    assert witness.in_region and region.contains(witness.x)
    logits = network.forward(witness.x)
    assert witness.margin == logits[1] - logits[0]


# ----------------------------------------------------------------------- user errors
def test_user_mistakes_are_one_line_errors(rng):
    network = random_network(rng, [3, 4, 3], 0.0, input_range=(0.0, 1.0))
    x0 = np.full(3, 0.5)
    label = int(network.predict(x0))
    other = (label + 1) % 3
    cases = [
        ({"label": 3}, "label 3"),
        ({"label": -1}, "label -1"),
        ({"label": 1.5}, "integer"),
        ({"label": label, "target": label}, "other than the label"),
        ({"label": label, "target": 7}, "target 7"),
        ({"label": label, "target": float(other)}, "integer"),
        ({"label": label, "radius": -0.1}, "radius"),
        ({"label": label, "radius": float("nan")}, "radius"),
        ({"label": label, "radius": float("inf")}, "radius"),
        ({"label": label, "radius": None}, "radius"),
        ({"label": label, "norm": "l2"}, "norm"),
        ({"label": label, "options": AttackOptions(mode="prove")}, "mode"),
        ({"label": label, "x0": np.full(4, 0.5)}, "4 values"),
        ({"label": label, "x0": np.array([0.5, 1.5, 0.5])}, "outside the input range"),
        ({"label": label, "x0": np.array([0.5, np.nan, 0.5])}, "NaN"),
    ]
    for overrides, fragment in cases:
        kwargs = {"x0": x0, "norm": "linf", "radius": 0.1, **overrides}
        with pytest.raises(PrunemipError) as error:
            find_adversarial_example(network, kwargs.pop("x0"), kwargs.pop("label"), **kwargs)
        assert_one_line(error, fragment)


def test_unbounded_inputs_are_an_error(rng):
    network = random_network(rng, [3, 4, 3], 0.0)
    unbounded = network.with_input_spec(InputSpec.create(3))
    x0 = np.full(3, 0.5)
    with pytest.raises(PrunemipError) as error:
        InputRegion.box(np.full(3, -np.inf), np.full(3, np.inf))
    assert_one_line(error, "unbounded")
    with pytest.raises(PrunemipError) as error:
        InputRegion.box(np.zeros(3), np.array([1.0, np.inf, 1.0]))
    assert_one_line(error, "input 1 is unbounded")
    # A ball is bounded even on an unbounded domain: its box is x0 ± ε, never a silent big-M.
    label = int(unbounded.predict(x0))
    result = find_adversarial_example(unbounded, x0, label, norm="linf", radius=0.1)
    np.testing.assert_allclose(result.region.lower, x0 - 0.1)
    np.testing.assert_allclose(result.region.upper, x0 + 0.1)
