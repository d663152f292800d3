"""The falsifier: its points lie in the region with their float64 slacks, it finds what brute
force shows is there, never claims what brute force rules out, respects strict rows, and gives
the same verdicts on CUDA; the gradient attack feeds the MIP, and no pipeline ever calls an input
robust where brute force finds an attack."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from prunemip.devices import check_device
from prunemip.engine.attack import AttackOptions, find_adversarial_example, target_order
from prunemip.engine.falsify import (
    VERIFY_EFFORT,
    FalsifyOptions,
    checkpoints,
    falsify,
)
from prunemip.engine.spec import margin_rows
from prunemip.engine.subdomains import OutputRows
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network
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

regions = st.sampled_from(["box", "linf", "l1"])


def some_region(
    network: Network, rng: np.random.Generator, kind: str, radius: float, centre: np.ndarray | None = None
) -> InputRegion:
    """The ``kind`` ball of ``radius`` around ``centre`` (default: a random point); for ``"box"``
    the plain box ``[centre − radius, centre + radius] ∩ [0, 1]``, or a random sub-box of [0, 1]^n."""
    if kind == "box" and centre is not None:
        return InputRegion.box(np.maximum(centre - radius, 0.0), np.minimum(centre + radius, 1.0))
    if kind == "box":
        corners = np.sort(rng.random((2, network.n_inputs)), axis=0)
        return InputRegion.box(corners[0], corners[0] + (corners[1] - corners[0]) * radius)
    return ball_region(network, rng.random(network.n_inputs) if centre is None else centre, kind, radius)


def random_conjunctions(network: Network, rng: np.random.Generator, count: int) -> list[OutputRows]:
    """``count`` conjunctions of 1–3 random rows over the outputs, some strict."""
    conjunctions = []
    for _ in range(count):
        k = int(rng.integers(1, 4))
        rows = rng.normal(size=(k, network.n_outputs))
        conjunctions.append(OutputRows.create(rows, rng.normal(size=k) * 0.5, rng.random(k) < 0.5))
    return conjunctions


def margins(network: Network, label: int, targets: list[int]) -> list[OutputRows]:
    return [margin_rows(network.n_outputs, label, t) for t in targets]


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
    options = FalsifyOptions(steps=10, batch=3, restarts=3)
    result = falsify(network, region, margins(network, label, targets), options, stop_at_first=False)
    assert result.found is None or result.slacks[result.found] > 0
    for index, t in enumerate(targets):
        point = result.points[index]
        assert region.contains(point, tol=1e-9)
        logits = network.forward(point)
        assert result.slacks[index] == pytest.approx(logits[t] - logits[label], abs=1e-12)
    clean = network.forward(x0)
    assert max(result.slacks) >= max(clean[t] - clean[label] for t in targets) - 1e-12


@settings(max_examples=scaled(30))
@given(sparse_networks(max_hidden_layers=2), seeds, regions, st.sampled_from([0.05, 0.3, 1.0]), st.booleans())
def test_candidates_lie_in_every_kind_of_region_with_their_float64_slacks(network, seed, kind, radius, stop):
    """Box, L∞ ball ∩ box and L1 ball ∩ box: every point reported is in the region (no
    tolerance), its slack is the float64 forward pass's, and a satisfied conjunction holds."""
    rng = np.random.default_rng(seed)
    region = some_region(network, rng, kind, radius)
    conjunctions = random_conjunctions(network, rng, int(rng.integers(1, 4)))
    options = FalsifyOptions(steps=12, batch=3, restarts=6, seed=seed % 1000)
    result = falsify(network, region, conjunctions, options, stop_at_first=stop)
    event(f"{kind}: {'sat' if result.found is not None else 'none'}")
    for conjunction, point, slack in zip(conjunctions, result.points, result.slacks, strict=True):
        if point is None:
            assert stop and result.found is not None
            continue
        assert region.contains(point)
        outputs = network.forward(point)
        assert slack == -conjunction.violation(outputs)[0]
        assert slack == pytest.approx(np.min(conjunction.rhs - conjunction.coefficients @ outputs), abs=1e-12)
    if result.found is not None:
        found = conjunctions[result.found]
        assert found.hold(network.forward(result.points[result.found]))


def test_starts_and_the_centre_are_searched_first():
    """A given start that satisfies the conjunction is found without a step; so is the centre."""
    rng = np.random.default_rng(0)
    network = random_network(rng, [4, 6, 3], 0.0)
    region = InputRegion.box(np.zeros(4), np.ones(4))
    start = rng.random(4)
    value = network.forward(start)
    conjunction = OutputRows.create(np.eye(3), value + 1e-9)  # y ≤ f(start) + 1e-9
    still = FalsifyOptions(steps=0, batch=1, restarts=1, ods_steps=0)
    result = falsify(network, region, [conjunction], still, starts=[start])
    assert result.found == 0 and not result.moved and result.restarts == 2
    np.testing.assert_array_equal(result.points[0], start)
    centre = OutputRows.create(np.eye(3), network.forward(region.midpoint))
    assert falsify(network, region, [centre], still).found == 0


def _identity_network() -> Network:
    """y = (ReLU(x), 0) on x ∈ [0, 1]: exact in floating point."""
    layers = (
        Layer.create(np.ones((1, 1)), [0.0]),
        Layer.create(np.array([[1.0], [0.0]]), [0.0, 0.0], "identity"),
    )
    return Network(layers, InputSpec((1,), np.zeros(1), np.ones(1)))


@pytest.mark.parametrize("strict", [False, True])
def test_strict_rows_need_a_positive_slack(strict):
    """``y_0 ≥ 1`` holds at x = 1, a corner every sign step reaches; ``y_0 > 1`` holds nowhere."""
    network = _identity_network()
    region = InputRegion.box(np.zeros(1), np.ones(1))
    at_least_one = OutputRows.create([-1.0, 0.0], [-1.0], [strict])
    result = falsify(network, region, [at_least_one], FalsifyOptions(steps=20, restarts=16))
    assert result.slacks[0] == 0.0 and result.points[0][0] == 1.0
    assert (result.found is None) == strict
    # An attack whose best margin is exactly 0 (y_1 − y_0 at x = 0) is no adversarial example.
    tie = falsify(network, region, margins(network, 0, [1]), FalsifyOptions(steps=20, restarts=16))
    assert tie.found is None and tie.slacks[0] == 0.0


#: Seeds of tiny nets and regions (box, L∞, L1) where brute force finds a margin ≥ 0.05 but 16 random
#: points find no adversarial input; three of them (94, 176, 352) have local maxima below 0 that
#: catch many chains.
HARD_SEEDS = (10, 11, 94, 150, 176, 352)


def _instance(seed: int) -> tuple[Network, InputRegion, int, list[int]]:
    rng = np.random.default_rng(seed)
    network = random_network(rng, [3, 4, 3, 3], 0.0, weight_scale=2.0, bias_scale=0.2)
    region = some_region(network, rng, ("box", "linf", "l1")[seed % 3], 0.3)
    label = int(network.predict(region.midpoint))
    return network, region, label, target_order(network.forward(region.midpoint), label)


@pytest.fixture(scope="module")
def hard_instances() -> list[tuple[Network, InputRegion, int, list[int], float]]:
    instances = []
    for seed in HARD_SEEDS:
        network, region, label, targets = _instance(seed)
        best = max(brute_force_margin(network, region, t, label) for t in targets)
        assert best >= 0.05
        instances.append((network, region, label, targets, best))
    return instances


def test_finds_what_brute_force_shows_in_most_seeds(hard_instances):
    """With the attack's default effort (one batch of 8 starts per target), an adversarial point
    for most seeds on instances where brute force finds a margin ≥ 0.05 and random points none."""
    runs = hits = 0
    for network, region, label, targets, _ in hard_instances:
        for seed in range(10):
            result = falsify(network, region, margins(network, label, targets), FalsifyOptions(seed=seed))
            runs += 1
            hits += result.found is not None
    assert hits >= 0.6 * runs, f"found in {hits} of {runs} runs"


@settings(max_examples=scaled(25))
@given(tiny_networks(max_relus=6), seeds, regions, st.sampled_from([-0.05, -1e-4, 1e-4, 0.05]))
def test_never_satisfies_what_brute_force_rules_out(network, seed, kind, offset):
    """``y_label − y_t ≤ d`` with ``d`` just around ``−max margin``: found only when brute force
    says it is satisfiable, and then at a point where the forward pass satisfies it."""
    rng = np.random.default_rng(seed)
    region = some_region(network, rng, kind, 0.5)
    label, target = 0, 1
    optimum = brute_force_margin(network, region, target, label)
    rhs = -optimum + offset  # the largest slack d + margin is `offset`
    conjunction = OutputRows.create(margin_rows(network.n_outputs, label, target).coefficients, [rhs])
    result = falsify(network, region, [conjunction], FalsifyOptions(steps=30, restarts=8, seed=seed % 997))
    event(f"offset {offset}: {'sat' if result.found is not None else 'none'}")
    if offset < -1e-6:
        assert result.found is None
    if result.found is not None:
        assert conjunction.hold(network.forward(result.points[0]))
    assert result.slacks[0] <= offset + 1e-9


def test_budget_deadline_and_options():
    network = random_network(np.random.default_rng(2), [5, 8, 3], 0.0)
    region = InputRegion.box(np.zeros(5), np.ones(5))
    unreachable = OutputRows.create(np.zeros(3), [-1.0])  # 0 ≤ −1
    result = falsify(network, region, [unreachable], FalsifyOptions(steps=5, batch=4, restarts=10))
    assert result.found is None and result.restarts == 10
    past = falsify(
        network, region, [unreachable], FalsifyOptions(batch=4, restarts=100), deadline=time.perf_counter()
    )
    assert past.restarts == 4  # the first batch's starts are always evaluated
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    for bad in ({"batch": 0}, {"restarts": 0}, {"steps": -1}, {"precision": "float16"}):
        with pytest.raises(PrunemipError):
            FalsifyOptions(**bad)
    with pytest.raises(PrunemipError, match="unknown device"):
        check_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where no GPU is present")
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(PrunemipError, match="no CUDA GPU"):
        check_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_cuda_gives_the_cpu_verdicts(hard_instances, precision):
    """Clear cases: every seed finds the instances without local maxima (10, 11, 150), and no
    point satisfies a margin 0.05 above the brute-force maximum: the same verdicts on both
    devices, every point in the region with its float64 slack."""
    options = replace(VERIFY_EFFORT, precision=precision)
    for seed, (network, region, label, targets, best) in zip(HARD_SEEDS, hard_instances, strict=True):
        conjunctions = margins(network, label, targets)
        impossible = OutputRows.create(conjunctions[0].coefficients, [-best - 0.05])
        questions = [([impossible], False), *([(conjunctions, True)] if seed in (10, 11, 150) else [])]
        for question, satisfiable in questions:
            cpu = falsify(network, region, question, options)
            cuda = falsify(network, region, question, options, device="cuda")
            assert (cpu.found is not None) == (cuda.found is not None) == satisfiable
            for index, point in enumerate(cuda.points):
                if point is not None:
                    assert region.contains(point)
                    assert cuda.slacks[index] == -question[index].violation(network.forward(point))[0]


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
    import prunemip.solvers.bounds as pipeline
    from prunemip.engine.mip import ConjunctionMip

    monkeypatch.setattr(pipeline, "lp_pays", lambda bounds: pays)
    real = ConjunctionMip.solve
    calls = []

    def recorded(mip, options, deadline, **kwargs):
        target = int(np.argmin(mip.rows.coefficients[0]))  # the row y_label − y_target
        calls.append((target, [s["method"] for s in mip.model.stats.bounds_stages]))
        return real(mip, options, deadline, **kwargs)

    monkeypatch.setattr(ConjunctionMip, "solve", recorded)
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
    from prunemip.engine.mip import ConjunctionMip
    from prunemip.solvers.highs import HighsOptions

    real = ConjunctionMip.solve
    seen = []

    def recorded(mip, options, deadline, **kwargs):
        seen.append(dict(options.extra))
        return real(mip, options, deadline, **kwargs)

    monkeypatch.setattr(ConjunctionMip, "solve", recorded)
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
