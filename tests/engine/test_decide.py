"""The decision engine on Spec questions: verdicts against brute force, anytime stops, progress."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from prunemip import interrupts
from prunemip.engine.attack import target_order
from prunemip.engine.decide import EngineOptions, _Run, _Search, decide
from prunemip.engine.progress import Progress
from prunemip.engine.spec import Spec, attack_spec, margin_rows
from prunemip.engine.subdomains import OutputRows
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from prunemip.solvers.result import SolveStatus
from tests.conftest import EXACT, ball_region, brute_force_margin, norms, random_network, seeds, tiny_networks


def level_rows(n_outputs: int, label: int, target: int, level: float) -> OutputRows:
    """``y_target − y_label ≥ level``, as the row ``y_label − y_target ≤ −level``."""
    return OutputRows.create(margin_rows(n_outputs, label, target).coefficients, [-level])


@given(
    tiny_networks(max_relus=6),
    seeds,
    norms,
    st.sampled_from(["decide", "optimize"]),
    st.sampled_from([-0.05, 0.05]),
    st.booleans(),
)
def test_a_disjunction_is_decided_as_brute_force_says(network, seed, norm, mode, offset, bab):
    """Two disjuncts, "margin to target t ≥ its optimum + offset" for two targets: sat (with a
    point that satisfies one) exactly when brute force reaches a level, unsat when neither."""
    rng = np.random.default_rng(seed)
    x0 = rng.random(network.n_inputs)
    label = int(network.predict(x0))
    region = ball_region(network, x0, norm, 0.3)
    targets = target_order(network.forward(x0), label)[:2]
    optima = [brute_force_margin(network, region, t, label) for t in targets]
    rows = tuple(
        level_rows(network.n_outputs, label, t, m + offset) for t, m in zip(targets, optima, strict=True)
    )
    spec = Spec(region, rows, tuple(f"target {t}" for t in targets))
    options = EngineOptions(mode=mode, highs=EXACT, bab=bab)
    (decision,) = decide(network, [spec], 60.0, options, starts=[x0])
    event(f"{mode}: {decision.status} by {[o.stage for o in decision.outcomes]}")
    assert not decision.interrupted
    if offset < 0:
        assert decision.status == "sat"
        witness = decision.outcomes[decision.witness]
        assert region.contains(witness.point)
        assert rows[decision.witness].hold(network.forward(witness.point))
    else:
        assert decision.status == "unsat"
        for outcome in decision.outcomes:  # each refuted with a proven bound of its slack below 0
            assert outcome.status == "unsat" and outcome.bound is not None and outcome.bound < 0


def test_optimize_mode_keeps_each_disjuncts_best_point():
    """Regression: a later satisfying point of smaller slack replaced the best one."""
    network = Network.from_arrays([np.array([[0.0], [1.0]])], [np.zeros(2)], InputSpec.create(1, 0, 1))
    region = ball_region(network, np.array([0.5]), "linf", 0.5)
    spec = attack_spec(region, 2, 0, [1])  # slack y_1 − y_0 = x
    run = _Run(
        _Search(network, EngineOptions(mode="optimize"), time.perf_counter(), 10.0, "linear"), spec, []
    )
    assert run.check(np.array([0.9]), "falsify") and run.check(np.array([0.2]), "falsify")
    assert run.slacks[0] == pytest.approx(0.9) and run.points[0][0] == pytest.approx(0.9)
    assert run.outcomes[0] is None  # optimize mode: the MIP still runs for the best point


def test_a_stop_request_ends_the_search_with_what_it_has(rng):
    """Ctrl-C's request during a MIP: HiGHS is interrupted, the decision says so and claims
    nothing unproved (the request comes from the progress hook, as a terminal's would)."""
    network = random_network(rng, [64, 60, 60, 10], 0.0)
    x0 = rng.random(64)
    label = int(network.predict(x0))
    region = ball_region(network, x0, "l1", 5.0)
    spec = attack_spec(region, 10, label, target_order(network.forward(x0), label))
    seen: list[Progress] = []

    def hook(progress: Progress) -> None:
        seen.append(progress)
        if progress.stage == "mip" and progress.elapsed > 0.5:
            interrupts.request()

    options = EngineOptions(mode="optimize", falsify=None, progress=hook)
    with interrupts.deferred():
        (decision,) = decide(network, [spec], 120.0, options, starts=[x0])
    assert not interrupts.requested()  # cleared on leaving, so the next search runs
    assert decision.interrupted and decision.seconds < 60.0
    assert decision.status in ("sat", "timeout")
    assert all(o.status in ("sat", "timeout") for o in decision.outcomes)
    assert any(p.stage == "mip" for p in seen) and all(p.name.startswith("target ") for p in seen)


def test_progress_reports_every_disjunct_settled(rng):
    network = random_network(rng, [4, 8, 8, 3], 0.0)
    x0 = rng.random(4)
    label = int(network.predict(x0))
    spec = attack_spec(
        ball_region(network, x0, "linf", 0.05), 3, label, target_order(network.forward(x0), label)
    )
    final: dict[str, Progress] = {}
    options = EngineOptions(highs=EXACT, progress=lambda p: final.__setitem__(p.name, p))
    (decision,) = decide(network, [spec], 30.0, options, starts=[x0])
    assert decision.status in ("sat", "unsat")
    if decision.status == "unsat":  # every disjunct was settled, and its last report says so
        assert set(final) == set(spec.names)
        assert all(p.settled and p.stage == "unsat" for p in final.values())
        assert all(p.bound is None or p.bound <= 0 for p in final.values())


def test_bad_questions_are_errors(rng):
    network = random_network(rng, [3, 4, 2], 0.0)
    region = ball_region(network, np.full(3, 0.5), "linf", 0.1)
    with pytest.raises(PrunemipError, match="timeout must be positive"):
        decide(network, [attack_spec(region, 2, 0, [1])], 0.0)
    with pytest.raises(PrunemipError, match="constrains 3 outputs"):
        decide(network, [attack_spec(region, 3, 0, [1])], 1.0)
    with pytest.raises(PrunemipError, match="unknown bounds method"):
        decide(network, [attack_spec(region, 2, 0, [1])], 1.0, EngineOptions(bounds="exact"))
    with pytest.raises(PrunemipError, match="needs disjuncts"):
        Spec(region, (), ())


def test_the_stage_that_settles_first_cancels_the_other(rng, monkeypatch):
    """The race: once branch and bound settles the disjunct, the MIP solving it beside it is
    interrupted and the decision returns at once, settled by "bab". (Branch and bound is faked
    here, to settle on cue once the MIP is under way; its real answers are checked above.)"""
    import threading

    import prunemip.engine.decide as engine
    import prunemip.engine.mip as mip
    from prunemip.engine.bab import BabResult

    network = random_network(rng, [64, 60, 60, 10], 0.0)
    x0 = rng.random(64)
    label = int(network.predict(x0))
    region = ball_region(network, x0, "l1", 5.0)
    spec = attack_spec(region, 10, label, target_order(network.forward(x0), label)[:1])
    mip_started = threading.Event()
    solves = []
    real_solve = mip.solve

    def spied_solve(*args, **kwargs):
        mip_started.set()
        solves.append(real_solve(*args, **kwargs))
        return solves[-1]

    def settles_on_cue(*args, **kwargs) -> BabResult:
        assert mip_started.wait(60.0)
        time.sleep(0.5)
        return BabResult("refuted", 1.0, np.inf)

    monkeypatch.setattr(mip, "solve", spied_solve)
    monkeypatch.setattr(engine, "branch_and_bound", settles_on_cue)
    options = EngineOptions(falsify=None, bounds="linear")
    (decision,) = decide(network, [spec], 120.0, options, starts=[x0])
    assert decision.status == "unsat" and decision.outcomes[0].stage == "bab"
    assert [s.status for s in solves] == [SolveStatus.INTERRUPTED] and decision.seconds < 60.0


def test_a_failing_stage_ends_the_race_with_its_error(rng, monkeypatch):
    """An error in the exact stages' thread stops branch and bound and reaches the caller."""
    import prunemip.engine.decide as engine

    def broken(*args, **kwargs):
        raise PrunemipError("the encoding failed")

    network = random_network(rng, [16, 24, 24, 4], 0.0)
    x0 = rng.random(16)
    label = int(network.predict(x0))
    spec = attack_spec(
        ball_region(network, x0, "l1", 3.0), 4, label, target_order(network.forward(x0), label)
    )
    monkeypatch.setattr(engine, "_encoded", broken)
    start = time.perf_counter()
    with pytest.raises(PrunemipError, match="the encoding failed"):
        decide(network, [spec], 120.0, EngineOptions(falsify=None), starts=[x0])
    assert time.perf_counter() - start < 60.0


def test_time_a_settled_disjunct_leaves_goes_to_the_open_ones(rng, monkeypatch):
    """Regression: with three open disjuncts the first MIP gets a third of the budget; when
    branch and bound settled the other two at once, that MIP never ran again and the query
    returned "timeout" with two thirds of its time unused. Now a MIP stopped by its share's
    limit is solved again on what is left. (Branch and bound is faked: it settles the second
    and third disjuncts at once and leaves the first open; every MIP runs to its limit.)"""
    import prunemip.engine.decide as engine
    import prunemip.engine.mip as mip
    from prunemip.engine.bab import BabResult

    network = random_network(rng, [8, 12, 12, 4], 0.0)
    x0 = rng.random(8)
    label = int(network.predict(x0))
    region = ball_region(network, x0, "linf", 0.05)
    spec = attack_spec(region, 4, label, target_order(network.forward(x0), label))
    limits = []
    real_solve = mip.solve

    def at_its_limit(model, options, **kwargs):
        limits.append(options.time_limit)
        time.sleep(options.time_limit)
        result = real_solve(model, replace(options, time_limit=1e-3), **kwargs)
        return replace(result, status=SolveStatus.TIME_LIMIT, dual_bound=None)

    def all_but_the_first(network, region, rows, *args, **kwargs) -> BabResult:
        first = rows is spec.disjuncts[0]
        return BabResult("open" if first else "refuted", -np.inf if first else 1.0, np.inf)

    monkeypatch.setattr(mip, "solve", at_its_limit)
    monkeypatch.setattr(engine, "branch_and_bound", all_but_the_first)
    options = EngineOptions(falsify=None, rule_out=False, bounds="linear")
    (decision,) = decide(network, [spec], 3.0, options)
    assert [o.status for o in decision.outcomes] == ["timeout", "unsat", "unsat"]
    assert len(limits) >= 2 and limits[0] == pytest.approx(1.0, abs=0.3)
    assert sum(limits) == pytest.approx(3.0, abs=0.5)  # the first disjunct's MIPs got the whole budget
    assert decision.outcomes[0].solve.status == SolveStatus.TIME_LIMIT


def test_branch_and_bound_carries_on_where_its_share_ran_out(rng, monkeypatch):
    """A disjunct whose branch and bound ran out of its share gets the next pass's time, and
    that search resumes from the open subdomains the last one left, not from the root.
    (Branch and bound is faked: it settles the second and third disjuncts at once and runs the
    first to its limit; every MIP runs to its limit.)"""
    import prunemip.engine.decide as engine
    import prunemip.engine.mip as mip
    from prunemip.engine.bab import BabResult

    network = random_network(rng, [8, 12, 12, 4], 0.0)
    x0 = rng.random(8)
    label = int(network.predict(x0))
    region = ball_region(network, x0, "linf", 0.05)
    spec = attack_spec(region, 4, label, target_order(network.forward(x0), label))
    real_solve = mip.solve
    resumed, returned = [], []

    def at_its_limit(model, options, **kwargs):
        time.sleep(options.time_limit)
        result = real_solve(model, replace(options, time_limit=1e-3), **kwargs)
        return replace(result, status=SolveStatus.TIME_LIMIT, dual_bound=None)

    def first_runs_out(network, region, rows, options, *, resume=None, **kwargs) -> BabResult:
        if rows is not spec.disjuncts[0]:
            return BabResult("refuted", 1.0, np.inf)
        resumed.append(resume)
        time.sleep(options.time_limit)
        returned.append(BabResult("open", -1.0, np.inf, seconds=options.time_limit))
        return returned[-1]

    monkeypatch.setattr(mip, "solve", at_its_limit)
    monkeypatch.setattr(engine, "branch_and_bound", first_runs_out)
    options = EngineOptions(falsify=None, rule_out=False, bounds="linear")
    (decision,) = decide(network, [spec], 2.0, options)
    assert [o.status for o in decision.outcomes] == ["timeout", "unsat", "unsat"]
    assert len(resumed) >= 2 and resumed[0] is None
    assert all(now is before for now, before in zip(resumed[1:], returned, strict=False))
