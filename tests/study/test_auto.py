"""The automatic search: choice within budget on validation, least proxy, no test split, resume."""

from __future__ import annotations

import csv
import math
import tomllib

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import prunemip.data
import prunemip.study.auto
from prunemip import InputSpec, Network
from prunemip.errors import PrunemipError
from prunemip.model_io import load_network
from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig
from prunemip.study.auto import SearchData, search
from prunemip.study.calibration import CalibrationRow, calibrate, rank_correlations
from prunemip.study.config import parse_config
from prunemip.study.jobs import model_jobs
from prunemip.study.mip_cost import PROXY_FORMS, CostFeatures, cost_features
from prunemip.study.search_space import (
    Candidate,
    Evaluation,
    SearchSpace,
    check_budget,
    choose,
    paired_margin,
    promise_slack,
    round_epochs,
    survivors,
)
from prunemip.study.tasks import train_task
from tests.cli.test_cli import assert_user_error, run

BUDGET = 2.0
BALLS = (("linf", 0.02), ("l1", 0.5))
CONFIG = RunConfig(
    "digits", (16, 16), TrainConfig(epochs=15, batch_size=64, lr=0.01), PruneConfig(finetune_epochs=3)
)
SPACE = SearchSpace(
    sparsities=(0.6, 0.8), neuron_sparsities=(0.5,), rs_weights=(0.0, 1e-3), imp_fraction=0.6, eta=2
)


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: a second thread only waits
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, one_thread):
    """A search on digits with every family, run while reading the test split fails."""
    real = prunemip.data.load_dataset

    def no_test(name, split="test", **options):
        if split == "test":
            raise AssertionError("the search read the test split")
        return real(name, split, **options)

    runs = tmp_path_factory.mktemp("auto-runs")
    with pytest.MonkeyPatch.context() as patch:
        for module in (prunemip.data, prunemip.study.auto):
            patch.setattr(module, "load_dataset", no_test)
        result = search(CONFIG, BUDGET, runs, space=SPACE, balls=BALLS)
        again = search(CONFIG, BUDGET, runs, space=SPACE, balls=BALLS)
    return result, again


def test_the_choice_is_within_budget_on_validation(searched) -> None:
    result, _ = searched
    dense = result.dense.accuracy
    assert result.chosen.within(dense, BUDGET)
    val = SearchData.load(CONFIG, SPACE.val_fraction).val
    measured = float(np.mean(result.network.predict(val.flat()) == val.labels))
    assert measured == pytest.approx(result.chosen.accuracy, abs=1e-12)
    assert result.network.metadata["val_accuracy"] == result.chosen.accuracy
    # Within the budget with its confidence margin, the margin of its own predictions.
    dense_right = result.networks[0].predict(val.flat()) == val.labels
    chosen_right = result.network.predict(val.flat()) == val.labels
    margin = paired_margin(dense_right, chosen_right, SPACE.confidence)
    assert result.chosen.margin == pytest.approx(margin, abs=1e-12)
    assert result.chosen.loss(dense) + margin <= BUDGET + 1e-9


def test_the_choice_has_the_least_proxy_within_budget(searched) -> None:
    result, _ = searched
    dense = result.dense.accuracy
    eligible = [e for e in result.evaluations if e.within(dense, BUDGET)]
    assert result.chosen.proxy == min(e.proxy for e in eligible)
    methods = {e.candidate.method for e in result.evaluations}
    assert methods == {"dense", "magnitude", "gmp", "imp", "neuron-magnitude"}
    # Successive halving: fewer candidates reach the last round than start.
    last = [e for e in result.evaluations if e.epochs == result.rounds[-1]]
    assert result.rounds == [2, 3] and 0 < len(last) < len(result.evaluations) - 1


def test_the_network_records_how_it_was_chosen_and_the_report_is_written(searched) -> None:
    result, _ = searched
    record = result.network.metadata["auto_search"]
    assert record["budget_points"] == BUDGET and record["chosen"] == result.chosen.candidate.label
    assert len(record["candidates"]) == len(result.evaluations)
    assert [row["proxy"] for row in record["candidates"]] == [e.proxy for e in result.evaluations]
    with (result.directory / "candidates.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.evaluations)
    assert [row["candidate"] for row in rows if row["chosen"] == "True"] == [result.chosen.candidate.label]
    assert (result.directory / "candidates.png").stat().st_size > 0


def test_a_second_search_trains_nothing(searched) -> None:
    result, again = searched
    assert result.trained_steps and not again.trained_steps
    assert again.chosen.candidate == result.chosen.candidate
    assert [e.accuracy for e in again.evaluations] == [e.accuracy for e in result.evaluations]


def test_prune_mode_searches_a_given_network(searched, tmp_path) -> None:
    result, _ = searched
    dense = load_network(next(result.directory.parent.glob("auto-dense-*/network-finetune-0.npz")))
    space = SearchSpace(sparsities=(0.8,), neuron_sparsities=(0.5,), rs_weights=(0.0,))
    pruned = search(CONFIG, BUDGET, tmp_path, space=space, balls=BALLS, dense=dense)
    assert {e.candidate.method for e in pruned.evaluations} == {"dense", "magnitude", "neuron-magnitude"}
    assert pruned.dense.accuracy == result.dense.accuracy


# ----------------------------------------------------------------------- the proxy
def _layer_network(bias: float) -> Network:
    """Two inputs, two hidden ReLUs z_j = x_j + bias, one output: unstable near 0 iff bias ≈ 0."""
    weights = [sp.csr_matrix(np.eye(2)), sp.csr_matrix(np.ones((1, 2)))]
    biases = [np.full(2, bias), np.zeros(1)]
    return Network.from_arrays(weights, biases, InputSpec.create((2,), -1.0, 1.0))


def test_more_unstable_neurons_make_a_larger_proxy() -> None:
    points = np.zeros((3, 2))
    unstable = cost_features(_layer_network(0.0), points, BALLS)
    stable = cost_features(_layer_network(5.0), points, BALLS)
    assert unstable.unstable == 2 and stable.unstable == 0 and unstable.nnz == stable.nnz
    for form in PROXY_FORMS:
        assert unstable.value(form) > stable.value(form), form


def test_rank_correlation_is_one_for_a_proxy_that_orders_the_times() -> None:
    rows = [
        CalibrationRow(
            str(i),
            CostFeatures(float(i), 10.0 * (3 - i), 100, 10),
            seconds=float(i * i),
            timeouts=0,
            solves=1,
        )
        for i in range(4)
    ]
    correlations = rank_correlations(rows)
    assert correlations["unstable"] == pytest.approx(1.0)
    assert correlations["bigm"] == pytest.approx(-1.0)


def test_calibration_solves_decide_mode_and_ranks_the_forms(searched) -> None:
    result, _ = searched
    paths = sorted(result.directory.parent.glob("auto-*/network-finetune-*.npz"))[:4]
    networks = {path.parent.name + path.stem: load_network(path) for path in paths}
    val = SearchData.load(CONFIG, SPACE.val_fraction).val
    calibration = calibrate(networks, val, BALLS, images=2, time_limit=10.0)
    assert calibration.best in PROXY_FORMS and set(calibration.correlations) == set(PROXY_FORMS)
    assert all(row.solves == 2 * len(BALLS) and row.seconds >= 0 for row in calibration.rows)


# ----------------------------------------------------------------------- successive halving
def _evaluation(proxy: float, accuracy: float) -> Evaluation:
    features = CostFeatures(proxy, proxy, 10, 2)
    return Evaluation(Candidate("magnitude", 0.9), 0, 1, accuracy, 0.9, features, proxy)


def test_rounds_promotion_and_choice() -> None:
    assert round_epochs(10, 3) == [1, 3, 10] and round_epochs(5, 3) == [2, 5] and round_epochs(0, 3) == [0]
    assert promise_slack(1.0, 0, 3) == 1.0 and promise_slack(1.0, 2, 3) == 0.0
    cheap_bad, cheap_close, costly_good, dense = (
        _evaluation(1, 0.80),
        _evaluation(2, 0.895),
        _evaluation(5, 0.90),
        _evaluation(9, 0.90),
    )
    everyone = [cheap_bad, cheap_close, costly_good, dense]
    # Within budget + slack, the cheapest go on; out of it, the most accurate follow.
    assert survivors(everyone, 0.90, 1.0, 0.0, 2) == [cheap_close, costly_good]
    assert survivors(everyone, 0.90, 0.1, 0.0, 2) == [costly_good, dense]
    assert choose(everyone, 0.90, 1.0) is cheap_close
    assert choose(everyone, 0.90, 0.0) is costly_good


def test_the_margin_is_the_standard_error_of_the_paired_loss() -> None:
    """``m = 100·z_q·sd(d)/√n`` for the per-image differences ``d = dense − candidate`` (right
    = 1), 0 for the same predictions or ``q = 0.5``."""
    rng = np.random.default_rng(0)
    dense, candidate = rng.random(1000) < 0.9, rng.random(1000) < 0.85
    d = dense.astype(float) - candidate.astype(float)
    expected = 100 * 1.6448536269514722 * d.std() / math.sqrt(d.size)
    assert paired_margin(dense, candidate, 0.95) == pytest.approx(expected, rel=1e-12)
    assert paired_margin(dense, dense, 0.95) == 0.0 and paired_margin(dense, candidate, 0.5) == 0.0


def test_the_margin_covers_the_true_loss_at_its_confidence() -> None:
    """Over many validation sets drawn from a population where the candidate truly loses 1
    point, the loss estimate plus its margin falls below 1 point in about 5 % of them (q = 0.95)."""
    rng = np.random.default_rng(1)
    # Per image: both right 0.85, only dense 0.04, only the candidate 0.03, both wrong 0.08.
    kinds = rng.choice(4, size=(2000, 2000), p=[0.85, 0.04, 0.03, 0.08])
    dense, candidate = (kinds == 0) | (kinds == 1), (kinds == 0) | (kinds == 2)
    misses = sum(
        100 * (dense[i].mean() - candidate[i].mean()) + paired_margin(dense[i], candidate[i], 0.95) < 1.0
        for i in range(len(kinds))
    )
    assert 0.03 < misses / len(kinds) < 0.07


def test_a_candidate_whose_margin_takes_it_over_the_budget_is_not_chosen() -> None:
    dense, close = _evaluation(9, 0.90), _evaluation(2, 0.895)
    unsure = Evaluation(close.candidate, 0, 1, 0.895, 0.9, close.features, 2, margin=0.6)
    assert choose([dense, close], 0.90, 1.0) is close
    assert choose([dense, unsure], 0.90, 1.0) is dense
    assert survivors([unsure, dense], 0.90, 1.0, 0.2, 2) == [unsure]  # the round's slack still admits it


def test_a_bad_confidence_is_refused() -> None:
    with pytest.raises(PrunemipError, match="confidence"):
        SearchSpace.from_options({"confidence": 1.0})


@pytest.mark.parametrize("budget", [-1.0, math.nan, math.inf])
def test_a_bad_budget_is_refused(budget) -> None:
    with pytest.raises(PrunemipError, match="accuracy budget"):
        check_budget(budget)


@pytest.mark.parametrize("budget", ["-1", "nan"])
def test_a_bad_budget_is_one_line_exit_2(tmp_path, capsys, monkeypatch, budget) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["train", "--accuracy-budget", budget, "--quiet"], capsys)
    assert_user_error(code, err, "accuracy budget")


def test_train_with_a_budget_saves_the_choice_and_its_report(tmp_path, capsys, one_thread) -> None:
    model = tmp_path / "auto.npz"
    tiny = ["--arch", "8", "--epochs", "3", "--batch-size", "64", "--lr", "0.01", "--finetune", "1"]
    options = ["--accuracy-budget", "3", "--rs-eps", "0.02", "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    code, out, _ = run(["train", *tiny, *options, "-o", str(model)], capsys)
    assert code == 0, out
    assert "Automatic search" in out and "chosen:" in out
    network = load_network(model)
    assert (
        network.metadata["auto_search"]["balls"] == [["linf", 0.02]] and "test_accuracy" in network.metadata
    )
    assert (tmp_path / "auto-candidates.csv").is_file() and (tmp_path / "auto-candidates.png").is_file()
    code, out, err = run(["train", *tiny, *options, "--sparsity", "0.5"], capsys)
    assert_user_error(code, err, "drop --sparsity")


def test_bad_search_options_are_refused() -> None:
    with pytest.raises(PrunemipError, match="unknown option 'sparsity'"):
        SearchSpace.from_options({"sparsity": 0.9})
    with pytest.raises(PrunemipError, match="rs_weights"):
        SearchSpace.from_options({"rs_weights": [-1.0]})
    with pytest.raises(PrunemipError, match="families"):
        SearchSpace.from_options({"families": ["rigl"]})


# ----------------------------------------------------------------------- the study's auto method
STUDY = """
name = "tiny-auto"
architectures = ["2x16"]
[data]
dataset = "digits"
[training]
epochs = 15
finetune_epochs = 3
batch_size = 64
lr = 0.01
[[methods]]
name = "auto"
accuracy_budget = 2.0
options = { families = ["magnitude"], sparsities = [0.8], rs_weights = [0.0, 1e-3] }
[attack]
images = 2
perturbations = [{norm = "linf", radius = 0.02}]
time_limit = 10
"""


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace("accuracy_budget = 2.0", "sparsities = [0.5]"), "auto chooses the sparsity"),
        (lambda t: t.replace("accuracy_budget = 2.0", "accuracy_budget = -1.0"), "accuracy budget"),
        (lambda t: t.replace("rs_weights", "rs_weight"), "unknown option 'rs_weight'"),
        (lambda t: t.replace('["magnitude"]', '["snip"]'), "families"),
    ],
)
def test_study_auto_config_errors(edit, fragment) -> None:
    with pytest.raises(PrunemipError, match="methods\\[0\\]") as error:
        parse_config(tomllib.loads(edit(STUDY)))
    assert fragment in str(error.value)


def test_study_auto_records_balls_only_when_not_the_default() -> None:
    protocol = '[{norm = "l1", radius = 5.0}, {norm = "linf", radius = 0.05}]'
    text = STUDY.replace('[{norm = "linf", radius = 0.02}]', protocol)
    auto = parse_config(tomllib.loads(text)).methods[0]
    assert auto.options == {
        "accuracy_budget": 2.0,
        "families": ("magnitude",),
        "sparsities": (0.8,),
        "rs_weights": (0.0, 1e-3),
    }


def test_study_auto_job_is_the_search_choice(one_thread) -> None:
    config = parse_config(tomllib.loads(STUDY))
    dense, auto = model_jobs(config)
    assert dense.is_dense and auto.method == "auto" and dict(auto.options)["balls"] == (("linf", 0.02),)
    network, metrics = train_task(auto, None)
    record = network.metadata["auto_search"]
    assert network.metadata["study_key"] == auto.key
    assert record["budget_points"] == 2.0 and len(record["candidates"]) == 3
    assert metrics["auto_choice"] == record["chosen"] and 0 < metrics["accuracy"] <= 1
    assert 100 * (metrics["dense_val_accuracy"] - metrics["val_accuracy"]) <= 2.0 + 1e-9
