"""HiGHS runner: decide mode, starting solutions, time limits, results."""

from __future__ import annotations

import json
import math

import highspy
import numpy as np
import pytest

from prunemip.encoders.bigm import encode
from prunemip.engine.attack import target_order
from prunemip.errors import PrunemipError
from prunemip.solvers.highs import DecisionRule, HighsOptions, objective_cutoff, solve, to_highs
from prunemip.solvers.result import SolveResult, SolveStatus
from tests.conftest import EXACT, ball_region, random_network

ONE_THREAD = HighsOptions(time_limit=60.0, threads=1)


def margin_model(seed: int, radius: float, widths=(16, 24, 24, 5), sparsity=0.3):
    """The runner-up margin MIP of a random net around a random point (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    network = random_network(rng, list(widths), sparsity)
    x0 = rng.random(widths[0])
    label = int(network.predict(x0))
    target = target_order(network.forward(x0), label)[0]
    model = encode(network, ball_region(network, x0, "linf", radius))
    return model.with_margin_objective(target, label), x0


def test_decide_stops_at_an_adversarial_incumbent():
    model, _x0 = margin_model(seed=2, radius=0.3)
    optimum = solve(model, EXACT).objective
    assert optimum > 0.1
    result = solve(model, ONE_THREAD, decide=DecisionRule())
    assert result.status in (SolveStatus.DECIDED_ABOVE, SolveStatus.OPTIMAL)
    assert result.objective is not None and result.objective > 0
    assert model.evaluate_objective(result.solution) == pytest.approx(result.objective, abs=1e-6)
    assert model.constraint_violation(result.solution) <= 1e-6
    # The incumbent is a real adversarial input: the forward pass agrees on the sign.
    x = model.region.project(model.inputs_from_solution(result.solution))
    assert model.evaluate_objective(model.solution_from_input(x)) > 0
    if result.status == SolveStatus.DECIDED_ABOVE:
        assert result.objective <= optimum + 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_decide_proves_no_adversarial(seed):
    model, x0 = margin_model(seed=seed, radius=0.3)
    optimum = solve(model, EXACT).objective
    assert optimum < -0.1
    start = model.solution_from_input(x0)
    for start_point in (None, start):
        result = solve(model, ONE_THREAD, start=start_point, decide=DecisionRule())
        assert result.status in (SolveStatus.DECIDED_AT_MOST, SolveStatus.OPTIMAL)
        assert result.dual_bound is not None and result.dual_bound <= 0.0
        assert result.dual_bound >= optimum - 1e-6
        if result.objective is not None:
            assert result.objective <= optimum + 1e-6  # an incumbent of the proven-negative MIP


def test_decide_threshold_in_both_senses():
    model, _ = margin_model(seed=1, radius=0.2)
    optimum = solve(model, EXACT).objective
    above = solve(model, ONE_THREAD, decide=DecisionRule(optimum - 0.05))
    assert above.status in (SolveStatus.DECIDED_ABOVE, SolveStatus.OPTIMAL)
    assert above.objective > optimum - 0.05
    at_most = solve(model, ONE_THREAD, decide=DecisionRule(optimum + 0.05))
    assert at_most.status in (SolveStatus.DECIDED_AT_MOST, SolveStatus.OPTIMAL)
    assert at_most.dual_bound <= optimum + 0.05
    # Minimisation: an incumbent beats the target when below it.
    flipped = model.with_objective(-model.objective, maximize=False)
    below = solve(flipped, ONE_THREAD, decide=DecisionRule(-optimum + 0.05))
    assert below.status in (SolveStatus.DECIDED_ABOVE, SolveStatus.OPTIMAL)
    assert below.objective < -optimum + 0.05
    not_below = solve(flipped, ONE_THREAD, decide=DecisionRule(-optimum - 0.05))
    assert not_below.status in (SolveStatus.DECIDED_AT_MOST, SolveStatus.OPTIMAL)
    assert not_below.dual_bound >= -optimum - 0.05


def test_decide_with_a_proof_margin_needs_the_bound_below_it():
    """A proof level below the target: the dual bound must clear the gap before stopping."""
    model, _ = margin_model(seed=1, radius=0.2)
    optimum = solve(model, EXACT).objective
    result = solve(model, ONE_THREAD, decide=DecisionRule(target=optimum + 0.1, proof=optimum - 1e-3))
    # The proof level lies below the optimum, so the solve cannot stop on the bound.
    assert result.status == SolveStatus.OPTIMAL
    with pytest.raises(ValueError, match="proof level"):
        solve(model, ONE_THREAD, decide=DecisionRule(target=0.0, proof=1.0))


def sense_and_offset_variants(model):
    """The margin model maximised and, negated, minimised, each with and without an offset."""
    for maximize in (True, False):
        for offset in (0.0, 3.7):
            cost = model.objective if maximize else -model.objective
            yield model.with_objective(cost, maximize=maximize, offset=offset)


@pytest.mark.parametrize("seed", [0, 2])
def test_objective_cutoff_keeps_exactly_the_solutions_beyond_it(seed):
    """Raw HiGHS under objective_cutoff(level), in both senses and with an offset: the true
    optimum when it lies beyond the level; otherwise nothing beyond it (HiGHS then says
    "infeasible", or returns some worse solution as "optimal", which decide mode never reads
    as a bound: see the next test)."""
    base, _ = margin_model(seed=seed, radius=0.3)
    for model in sense_and_offset_variants(base):
        optimum = solve(model, EXACT).objective
        sense = 1.0 if model.maximize else -1.0
        for step in (-0.01, 0.01):
            level = optimum + sense * step
            highs = to_highs(model)
            EXACT.apply(highs)
            highs.setOptionValue("log_to_console", False)
            cutoff = objective_cutoff(level, model.maximize, model.objective_offset)
            highs.setOptionValue("objective_bound", cutoff)
            highs.run()
            status = highs.getModelStatus()
            value = highs.getInfo().objective_function_value
            if step < 0:
                assert status == highspy.HighsModelStatus.kOptimal
                assert value == pytest.approx(optimum, abs=1e-6)
            else:
                assert status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kOptimal)
                assert status == highspy.HighsModelStatus.kInfeasible or sense * (value - level) <= 0


@pytest.mark.parametrize("seed", [0, 1])
def test_decide_under_the_cutoff_claims_the_proof_level_and_no_more(seed):
    """Nothing beats the proof level: the answer is DECIDED_AT_MOST with the proof level as
    dual bound, never the value of a worse incumbent (here the start at the centre) that
    HiGHS reports as "optimal" under its cutoff."""
    base, x0 = margin_model(seed=seed, radius=0.3)
    for model in sense_and_offset_variants(base):
        optimum = solve(model, EXACT).objective
        sense = 1.0 if model.maximize else -1.0
        start = model.solution_from_input(x0)
        assert sense * (optimum - model.evaluate_objective(start)) > 0.01  # the start is worse
        proof = optimum + sense * 0.01
        rule = DecisionRule(target=proof + sense * 0.05, proof=proof)
        for start_point in (None, start):
            result = solve(model, ONE_THREAD, start=start_point, decide=rule)
            assert result.status == SolveStatus.DECIDED_AT_MOST
            assert result.dual_bound == proof
            if result.objective is not None:
                assert sense * (result.objective - optimum) <= 1e-6


def test_starting_solution_is_accepted_and_never_worsened():
    model, x0 = margin_model(seed=2, radius=0.1)
    start = model.solution_from_input(x0)
    assert model.constraint_violation(start) <= 1e-9
    result = solve(model, ONE_THREAD, start=start)
    assert result.start_accepted is True
    assert result.objective >= model.evaluate_objective(start) - 1e-9
    assert solve(model, ONE_THREAD).start_accepted is None


def test_time_limit_is_respected_on_a_hard_instance():
    """A dense 64-60-60-10 net at L∞ 0.1 without a start is far beyond 1 s for HiGHS."""
    model, _ = margin_model(seed=0, radius=0.1, widths=(64, 60, 60, 10), sparsity=0.0)
    assert model.stats.binaries > 50
    result = solve(model, HighsOptions(time_limit=1.0, threads=1))
    assert result.status == SolveStatus.TIME_LIMIT
    assert 0.5 <= result.solve_seconds <= 5.0
    assert result.dual_bound is not None and math.isfinite(result.dual_bound)
    json.dumps(result.to_dict())


def test_a_stop_request_interrupts_the_mip_search():
    """``cancel`` is polled in the MIP search: True ends the solve at once, INTERRUPTED, with
    the dual bound it had (a racing search settled the question)."""
    model, _ = margin_model(seed=0, radius=0.1, widths=(64, 60, 60, 10), sparsity=0.0)
    polls = []

    def cancel() -> bool:
        polls.append(True)
        return len(polls) > 3

    result = solve(model, HighsOptions(time_limit=60.0, threads=1), cancel=cancel)
    assert result.status == SolveStatus.INTERRUPTED and len(polls) == 4
    assert result.solve_seconds < 30.0


def test_solve_result_to_dict_is_json_ready():
    model, x0 = margin_model(seed=2, radius=0.1)
    result = solve(model, ONE_THREAD, start=model.solution_from_input(x0), decide=DecisionRule())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == result.status.value
    assert "solution" not in data
    assert set(data) == {
        "status",
        "highs_status",
        "objective",
        "dual_bound",
        "gap",
        "nodes",
        "lp_iterations",
        "load_seconds",
        "presolve_seconds",
        "solve_seconds",
        "start_accepted",
    }
    assert isinstance(result, SolveResult) and data["start_accepted"] is True


def test_pure_lp_and_empty_models():
    """Without unstable neurons the MIP is an LP: optimal, dual bound = objective."""
    model, x0 = margin_model(seed=3, radius=0.0)
    assert model.stats.binaries == 0
    result = solve(model, ONE_THREAD, decide=DecisionRule())
    assert result.status == SolveStatus.OPTIMAL
    assert result.dual_bound == result.objective
    assert result.objective == pytest.approx(
        model.evaluate_objective(model.solution_from_input(x0)), abs=1e-9
    )


def test_bad_options_are_user_errors():
    model, _ = margin_model(seed=2, radius=0.05)
    with pytest.raises(PrunemipError, match="time limit"):
        solve(model, HighsOptions(time_limit=0.0))
    with pytest.raises(PrunemipError, match="no_such_option"):
        solve(model, HighsOptions(extra={"no_such_option": 1}))
    highs = to_highs(model)
    assert highs.getNumCol() == model.n_cols and highs.getNumRow() == model.n_rows


def test_tightened_options_shrink_every_feasibility_tolerance_down_to_1e_9():
    tighter = HighsOptions(extra={"mip_heuristic_run_rins": False}).tightened()
    assert tighter is not None and tighter.extra["mip_heuristic_run_rins"] is False
    assert tighter.feasibility_tolerance == pytest.approx(1e-9)  # 1e-6 × 1e-3
    assert tighter.extra["dual_feasibility_tolerance"] == pytest.approx(1e-9)  # 1e-7 × 1e-3, floored
    assert tighter.tightened() is None
    loose = HighsOptions(extra={"mip_feasibility_tolerance": 0.05, "dual_feasibility_tolerance": 1e-10})
    tightened = loose.tightened()
    assert tightened is not None and tightened.feasibility_tolerance == pytest.approx(5e-5)
    assert tightened.extra["dual_feasibility_tolerance"] == 1e-10  # never loosened
