"""Studies: config validation, job keys, the Dask runner's exactly-once results, the report."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from prunemip import InputSpec, Network
from prunemip.errors import PrunemipError
from prunemip.pruning.config import parse_arch
from prunemip.study.config import load_config, parse_config
from prunemip.study.jobs import job_keys, model_jobs, solve_jobs
from prunemip.study.report import (
    best_within_budget,
    shifted_geometric_mean,
    summarize,
    summarize_pooled,
    write_report,
)
from prunemip.study.runner import ResultsLog, run_study
from tests.study.conftest import BIN, wait_for

TINY = """
name = "tiny"
architectures = ["2x8"]
[data]
dataset = "digits"
[training]
epochs = 3
finetune_epochs = 1
batch_size = 128
lr = 0.005
seeds = [0]
[[methods]]
name = "magnitude"
sparsities = [0.8]
[attack]
images = 3
perturbations = [{norm = "linf", radius = 0.05}]
time_limit = 10
surrogate = true
"""


def tiny_config(tmp_path: Path, text: str = TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return load_config(path)


# ----------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace('name = "tiny"\n', ""), "name is missing"),
        (lambda t: t.replace('["2x8"]', '["2y8"]'), "cannot read architecture"),
        (lambda t: t.replace("sparsities = [0.8]", "sparsities = [1.0]"), "methods[0].sparsities[0]"),
        (lambda t: t.replace("epochs = 3", "epochs = 3\nepocs = 4"), "unknown key training.epocs"),
        (lambda t: t.replace("lr = 0.005", 'lr = "fast"'), "training.lr must be a float"),
        (lambda t: t.replace('norm = "linf"', 'norm = "l2"'), "attack.perturbations[0].norm"),
        (lambda t: t.replace("seeds = [0]", "seeds = []"), "training.seeds must not be empty"),
        (lambda t: t.replace("time_limit = 10", "time_limit = 0"), "attack.time_limit must be > 0"),
        (
            lambda t: t.replace("time_limit = 10", 'time_limit = 10\nbounds = "tight"'),
            "attack.bounds is 'tight'",
        ),
        (lambda t: t.replace("time_limit = 10", "time_limit = 10\ngradient_attack = 1"), "gradient_attack"),
        (lambda t: t.replace("radius = 0.05", "radius = -1"), "radius must be >= 0"),
        (lambda t: t + "\n[[methods]]\nsparsities = [0.5]\n", "methods[1].name is missing"),
        (lambda t: t.replace('[data]\ndataset = "digits"', "[data]"), "data.dataset is missing"),
        (lambda t: "foo = 1\n" + t, "unknown key foo"),
        (lambda t: "name = [", "tiny.toml"),
    ],
)
def test_config_errors_name_the_key(tmp_path, edit, fragment):
    with pytest.raises(PrunemipError) as error:
        tiny_config(tmp_path, edit(TINY))
    message = str(error.value)
    assert "\n" not in message
    assert fragment in message


def test_unknown_method_is_rejected_against_the_registry(tmp_path):
    import tomllib

    with pytest.raises(PrunemipError, match="not a pruning method"):
        parse_config(tomllib.loads(TINY), known_methods=("random", "snip"))


def test_architectures_parse():
    assert parse_arch("2x100") == (100, 100)
    assert parse_arch(" 6 x 50 ") == (50,) * 6
    assert parse_arch("100,50") == (100, 50)
    for bad in ("", "0x5", "2x0", "a,b", "100;50"):
        with pytest.raises(PrunemipError):
            parse_arch(bad)


def test_shipped_study_configs_are_valid():
    configs = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.toml"))
    assert configs, "experiments/ should hold the study configs"
    for path in configs:
        config = load_config(path)
        assert config.architectures and config.attack.images > 0


# ----------------------------------------------------------------------- jobs
def test_job_keys_are_content_addresses(tmp_path):
    config = tiny_config(tmp_path)
    models = model_jobs(config)
    assert [m.method for m in models] == ["dense", "magnitude"]
    assert models[1].dense_job().key == models[0].key
    keys = [m.key for m in models] + [s.key for m in models for s in solve_jobs(config, m)]
    assert len(keys) == len(set(keys))
    # The dense model gets no surrogate runs; the pruned one gets one per attack.
    assert len(solve_jobs(config, models[0])) == 3 and len(solve_jobs(config, models[1])) == 6
    again = model_jobs(tiny_config(tmp_path))
    assert [m.key for m in again] == [m.key for m in models]
    longer = model_jobs(tiny_config(tmp_path, TINY.replace("epochs = 3", "epochs = 4")))
    assert longer[0].key != models[0].key
    # Adding a seed keeps every job of the first; fine-tuning epochs change only pruned models.
    two_seeds = _all_keys(tiny_config(tmp_path, TINY.replace("seeds = [0]", "seeds = [0, 1]")))
    assert set(keys) < set(two_seeds) and len(two_seeds) == 2 * len(keys)
    finetune = model_jobs(tiny_config(tmp_path, TINY.replace("finetune_epochs = 1", "finetune_epochs = 2")))
    assert finetune[0].key == models[0].key and finetune[1].key != models[1].key


# ----------------------------------------------------------------------- results log
def test_results_log_survives_a_torn_line(tmp_path):
    log = ResultsLog(tmp_path / "results.jsonl")
    log.append({"key": "a", "status": "robust"})
    with log.path.open("ab") as handle:
        handle.write(b'{"key": "b", "sta')  # a crash in the middle of a write
    assert log.keys() == {"a"}
    log.append({"key": "c"})
    assert log.keys() == {"a", "c"}
    assert all(json.loads(line) for line in log.path.read_text().splitlines()[-1:])


# ----------------------------------------------------------------------- report
def model_record(method, sparsity, accuracy, nnz=10, **extra):
    keys = {"kind": "model", "key": f"m-{method}{sparsity}"}
    setting = {"architecture": "2x8", "method": method, "sparsity": sparsity}
    return keys | setting | {"accuracy": accuracy, "nnz": nnz} | extra


def solve_record(method, sparsity, image, status, seconds, binaries=10, found=False):
    keys = {"kind": "solve", "key": f"{method}{sparsity}{image}", "model_key": f"m-{method}{sparsity}"}
    setting = {"architecture": "2x8", "method": method, "sparsity": sparsity, "seed": 0, "image": image}
    instance = {"perturbation": "Linf=0.05", "solver_seed": 0, "target_rule": "runner-up"}
    outcome = {"status": status, "seconds": seconds, "time_limit": 100.0, "binaries": binaries}
    return keys | setting | instance | outcome | {"bigm_width": 1.0, "found": found}


def test_report_aggregates_a_hand_made_results_file(tmp_path):
    records = [
        model_record("dense", 0.0, 0.9, nnz=100),
        model_record("magnitude", 0.9, 0.88),
        solve_record("dense", 0.0, 0, "robust", 9.0),
        solve_record("dense", 0.0, 1, "timeout", 100.0),
        solve_record("dense", 0.0, 2, "adversarial", 3.0, found=True),
        solve_record("dense", 0.0, 3, "misclassified", 0.0),
        solve_record("magnitude", 0.9, 0, "robust", 1.0, binaries=2),
        solve_record("magnitude", 0.9, 1, "robust", 4.0, binaries=4),
        solve_record("magnitude", 0.9, 2, "adversarial", 0.5, binaries=3, found=True),
        solve_record("magnitude", 0.9, 3, "robust", 0.1, binaries=1),
    ]
    dense, pruned = summarize(records)
    assert (dense.method, dense.solved, dense.instances, dense.misclassified) == ("dense", 2, 3, 1)
    assert dense.sgm_seconds == pytest.approx(shifted_geometric_mean([9.0, 100.0, 3.0]))
    assert dense.sgm_seconds == pytest.approx((10 * 101 * 4) ** (1 / 3) - 1)
    # Image 3 is misclassified by dense, so only images 0-2 pair up: 9/1, 100/4, 3/0.5.
    assert pruned.median_speedup == pytest.approx(9.0)
    assert pruned.dense_timeouts_solved == "1/1"
    assert (pruned.solved, pruned.instances) == (4, 4)
    assert pruned.binaries == pytest.approx(2.5)
    assert pruned.found_rate == pytest.approx(0.25)
    assert pruned.accuracy_mean == pytest.approx(0.88) and pruned.nnz == 10
    assert math.isnan(shifted_geometric_mean([]))
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    written = write_report(path)
    assert {p.name for p in written} >= {"report.md", "summary.csv", "solve_time_vs_sparsity.png"}
    assert "| 2x8 | Linf=0.05 | magnitude | 0.9 |" in (tmp_path / "report" / "report.md").read_text()


def test_a_method_with_options_is_a_row_of_its_own(tmp_path):
    """The same method and sparsity with and without a regulariser are two settings."""
    options = {"rs_weight": 0.001, "rs_eps": 0.05}
    rs = {"options": options, "model_key": "m-rs"}
    regularised = [
        solve_record("magnitude", 0.9, i, "robust", 0.5) | rs | {"key": f"rs{i}"} for i in range(3)
    ]
    records = [
        model_record("magnitude", 0.9, 0.88, options={}),
        model_record("magnitude", 0.9, 0.86, options=options, key="m-rs"),
        *(solve_record("dense", 0.0, image, "timeout", 100.0) for image in range(3)),
        *(solve_record("magnitude", 0.9, image, "robust", 10.0) for image in range(3)),
        *regularised,
    ]
    rows = {row.method: row for row in summarize(records)}
    assert set(rows) == {"dense", "magnitude", "magnitude [rs_eps=0.05, rs_weight=0.001]"}
    plain, rs = rows["magnitude"], rows["magnitude [rs_eps=0.05, rs_weight=0.001]"]
    assert (plain.accuracy_mean, plain.median_speedup) == (pytest.approx(0.88), pytest.approx(10.0))
    assert (rs.accuracy_mean, rs.median_speedup) == (pytest.approx(0.86), pytest.approx(200.0))


def test_pooled_table_judges_settings_within_the_accuracy_budget(tmp_path):
    """Perturbations pool per setting; the best setting is the fastest one within budget."""

    def on_ball(record, perturbation):
        return {**record, "perturbation": perturbation, "key": record["key"] + perturbation}

    dense = [solve_record("dense", 0.0, 0, "timeout", 100.0), solve_record("dense", 0.0, 1, "robust", 20.0)]
    within = [solve_record("magnitude", 0.5, i, "robust", 10.0) for i in range(2)]
    too_lossy = [solve_record("magnitude", 0.9, i, "robust", 0.1) for i in range(2)]
    records = [
        model_record("dense", 0.0, 0.90),
        model_record("magnitude", 0.5, 0.89),
        model_record("magnitude", 0.9, 0.87),
    ]
    for perturbation in ("Linf=0.05", "L1=5"):
        records += [on_ball(r, perturbation) for r in dense + within + too_lossy]
    rows = summarize_pooled(records, accuracy_budget=1.5)
    by_sparsity = {row.sparsity: row for row in rows}
    fast, slow = by_sparsity[0.9], by_sparsity[0.5]
    assert (slow.accuracy_drop, slow.within_budget) == (pytest.approx(1.0), True)
    assert (fast.accuracy_drop, fast.within_budget) == (pytest.approx(3.0), False)
    # Both balls pool: speed-ups 100/10 and 20/10 twice each, so the median is (10 + 2) / 2.
    assert (slow.instances, slow.solved, slow.median_speedup) == (4, 4, pytest.approx(6.0))
    assert (slow.dense_timeouts, slow.dense_timeouts_solved) == (2, 2)
    assert best_within_budget(rows) == {"2x8": slow}
    # A drop of exactly the budget counts (0.90 → 0.87 is 3.0000000000000027 points in floats).
    assert best_within_budget(summarize_pooled(records, accuracy_budget=3.0))["2x8"].sparsity == 0.9
    assert best_within_budget(summarize_pooled(records, accuracy_budget=0.5)) == {}
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write_report(path, accuracy_budget=0.5)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "2x8: no pruned setting within 0.5 points of dense" in report


def test_a_report_with_nothing_to_plot_says_so_and_writes_csv_headers(tmp_path):
    """No pruned model attacked, no adversarial example: the figures without data are left out
    (an older copy too) and report.md says why; empty tables are CSV headers, not empty files."""
    misclassified = solve_record("dense", 0.0, 1, "misclassified", 0.0, found=True)
    misclassified |= {"x0": [0.5] * 4, "x_adv": [0.5] * 4}  # the clean image is its own witness
    records = [
        model_record("dense", 0.0, 0.9),
        model_record("magnitude", 0.9, 0.88),
        solve_record("dense", 0.0, 0, "robust", 2.0),
        misclassified,
        solve_record("magnitude", 0.9, 1, "misclassified", 0.0),
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "adversarial_examples.png").write_bytes(b"an earlier report's figure")
    written = write_report(path)
    folder = tmp_path / "report"
    assert all(p.stat().st_size > 0 for p in written)
    assert [p.name for p in folder.glob("*.png")] == ["accuracy_vs_sparsity.png"]  # the one with data
    assert (folder / "pooled.csv").read_text().startswith("architecture,method,sparsity,accuracy_drop,")
    assert len((folder / "pooled.csv").read_text().splitlines()) == 1
    assert (folder / "surrogate.csv").read_text().splitlines() == [
        "architecture,perturbation,method,sparsity,instances,found_for_dense,median_seconds_to_found,dense_found"
    ]
    report = (folder / "report.md").read_text()
    assert "(no surrogate runs: the study's attack.surrogate is false)" in report
    for stem in ("solve_time_vs_sparsity", "speedup_vs_accuracy_drop"):
        assert f"* `{stem}.png` not drawn: no pruned setting has " in report
    assert "* `adversarial_examples.png` not drawn: no attack found an adversarial example" in report


def test_figures_show_real_attacks_and_say_when_a_panel_is_empty(tmp_path):
    from prunemip.study.figures import _examples_plot, _line_plot, _speedup_plot

    adversarial = solve_record("dense", 0.0, 0, "adversarial", 1.0, found=True) | {"norm": "linf"}
    adversarial |= {"x0": [0.5] * 4, "x_adv": [0.55, 0.45, 0.5, 0.5], "label": 3, "target": 5}
    misclassified = solve_record("dense", 0.0, 1, "misclassified", 0.0, found=True)
    misclassified |= {"x0": [0.5] * 4, "x_adv": [0.5] * 4, "label": 1, "target": 7}
    examples = _examples_plot([misclassified, adversarial])
    assert len(examples.axes) == 3  # one row: the misclassified clean image is no example
    assert [axis.get_title() for axis in examples.axes] == [
        "clean: label 3",
        "adversarial: class 5 wins",
        "difference, ‖δ‖∞ = 0.05",
    ]

    def on_ball(record, perturbation):
        return record | {"perturbation": perturbation, "key": record["key"] + perturbation}

    records = [model_record("dense", 0.0, 0.9), model_record("magnitude", 0.9, 0.89)]
    for ball in ("Linf=0.05", "L1=5"):
        records += [on_ball(solve_record("dense", 0.0, i, "timeout", 100.0), ball) for i in range(2)]
    records += [on_ball(solve_record("magnitude", 0.9, i, "robust", 1.0), "Linf=0.05") for i in range(2)]
    records += [on_ball(solve_record("magnitude", 0.9, i, "misclassified", 0.0), "L1=5") for i in range(2)]
    rows = summarize(records)
    times = _line_plot(rows, "sgm_seconds", "time (s)", True, "no attacked image")
    l1, linf = times.axes
    assert [text.get_text() for text in l1.texts] == ["no attacked image"] and not l1.lines
    assert len(linf.lines) == 1 and linf.get_ylabel() == "time (s)"
    speedup = _speedup_plot(rows, 1.5)
    labels = [text.get_text() for text in speedup.axes[0].get_legend().get_texts()]
    assert labels == ["Linf=0.05", "accuracy budget (1.5 points)"]
    assert [text.get_text() for text in speedup.axes[0].texts] == ["magnitude 0.9"]
    assert _speedup_plot([row for row in rows if row.perturbation == "L1=5"], 1.5) is None


# ----------------------------------------------------------------------- runner
def _all_keys(config):
    return set(job_keys(config))


def _keys_once(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def test_two_worker_local_cluster_runs_a_tiny_study(tmp_path):
    config = tiny_config(tmp_path)
    epochs: dict[str, dict[str, list[tuple[int, int]]]] = {}

    def record_epoch(model, step, row):
        epochs.setdefault(model.label, {}).setdefault(step, []).append((row["epoch"], row["epochs"]))

    log = io.StringIO()
    console = Console(file=log, width=200)  # not a terminal: one plain line per job and epoch
    summary = run_study(config, tmp_path / "run", workers=2, console=console, on_epoch=record_epoch)
    lines = log.getvalue().splitlines()
    job_lines = [line for line in lines if re.match(r"\d\d:\d\d:\d\d \[\d+/\d+\] ", line)]
    assert [line.split()[1] for line in job_lines] == [
        f"[{n}/{summary.completed}]" for n in range(1, summary.completed + 1)
    ]
    assert sum(" trained 2x8 " in line for line in job_lines) == 2
    epoch_lines = [line for line in lines if " train 2x8 dense seed 0: " in line]
    assert [line.split(" epoch ")[1].split(",")[0] for line in epoch_lines] == ["1/3", "2/3", "3/3"]
    # Every epoch of every training step reaches the client from the workers, in order.
    assert sorted(epochs) == ["2x8 dense seed 0", "2x8 magnitude 80% seed 0"]
    for steps in epochs.values():
        for rows in steps.values():
            total = rows[0][1]
            assert rows == [(epoch, total) for epoch in range(1, total + 1)]
    assert sum(len(rows) for rows in epochs["2x8 dense seed 0"].values()) == 3
    assert sum(len(rows) for rows in epochs["2x8 magnitude 80% seed 0"].values()) == 1
    keys = _keys_once(tmp_path / "run" / "results.jsonl")
    assert sorted(keys) == sorted(_all_keys(config))  # every job exactly once
    assert summary.completed == len(keys) and summary.failed == 0
    records = ResultsLog(tmp_path / "run" / "results.jsonl").records()
    for record in records:
        if record["kind"] == "solve":
            assert record["status"] in ("adversarial", "robust", "misclassified", "timeout", "unknown")
            if record["found"] and record["status"] == "adversarial":
                assert np.max(np.abs(np.subtract(record["x_adv"], record["x0"]))) <= 0.05 + 1e-9
    models = [r for r in records if r["kind"] == "model"]
    assert all((tmp_path / "run" / "models" / f"{m['key']}.npz").exists() for m in models)
    again = run_study(config, tmp_path / "run", workers=1)
    assert again.completed == 0 and again.skipped == len(keys)


@pytest.fixture(scope="module")
def shared_cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client


def test_interrupted_run_resumes_without_repeating_or_losing_jobs(tmp_path, shared_cluster):
    cluster, _ = shared_cluster
    config = tiny_config(tmp_path)
    seen = []

    def interrupt_after_four(record):
        seen.append(record["key"])
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(
            config, tmp_path / "run", scheduler=cluster.scheduler_address, on_record=interrupt_after_four
        )
    assert _keys_once(tmp_path / "run" / "results.jsonl") == seen
    resumed = run_study(config, tmp_path / "run", scheduler=cluster.scheduler_address)
    assert resumed.skipped == 4
    keys = _keys_once(tmp_path / "run" / "results.jsonl")
    assert sorted(keys) == sorted(_all_keys(config))


def test_a_killed_worker_loses_no_job(tmp_path, shared_cluster):
    cluster, client = shared_cluster
    config = tiny_config(tmp_path)
    killed = []

    def kill_a_worker(record):
        if not killed:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    summary = run_study(
        config, tmp_path / "run", scheduler=cluster.scheduler_address, on_record=kill_a_worker
    )
    assert killed
    keys = _keys_once(tmp_path / "run" / "results.jsonl")
    assert sorted(keys) == sorted(_all_keys(config)) or summary.failed > 0
    rerun = run_study(config, tmp_path / "run", scheduler=cluster.scheduler_address)
    assert sorted(_keys_once(tmp_path / "run" / "results.jsonl")) == sorted(_all_keys(config))
    assert rerun.failed == 0


def test_a_resumed_run_survives_losing_every_worker(tmp_path, shared_cluster):
    """Models trained by an earlier run reach the cluster as tasks (not scattered data), so the
    scheduler computes them again when every worker holding one dies."""
    cluster, client = shared_cluster
    client.wait_for_workers(2, timeout=120)  # an earlier test's killed worker is restarted by its nanny
    config = tiny_config(tmp_path)
    results = tmp_path / "run" / "results.jsonl"
    run_study(config, tmp_path / "run", scheduler=cluster.scheduler_address)
    models = [line for line in results.read_text().splitlines() if json.loads(line)["kind"] == "model"]
    results.write_text("\n".join(models) + "\n")  # the models done, every attack still to run
    killed = []

    def kill_every_worker(record):
        if not killed:
            for pid in client.run(os.getpid).values():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    scheduler = cluster.scheduler_address
    summary = run_study(config, tmp_path / "run", scheduler=scheduler, on_record=kill_every_worker)
    assert len(killed) == 2 and summary.failed == 0 and summary.skipped == len(models)
    assert sorted(_keys_once(results)) == sorted(_all_keys(config))


def test_ctrl_c_before_the_first_job_is_one_line_naming_no_results_file(tmp_path, start):
    """Ctrl-C reaches every process of the group, as from a terminal: the local workers ignore
    it, the client stops and closes them, and says how far the study got."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    command = [str(BIN / "prunemip"), "experiment", "run", str(config), "--workers", "1", "--out", str(out)]
    run = start(command, tmp_path / "run.log")
    wait_for(lambda: "jobs (2 models)" in (tmp_path / "run.log").read_text(), 120, "the job count")
    os.killpg(run.pid, signal.SIGINT)
    assert run.wait(timeout=120) == 130
    total = len(_all_keys(load_config(config)))
    assert (tmp_path / "run.err").read_text().splitlines() == [
        f"prunemip: interrupted; 0 of {total} jobs done; run the same command again to resume"
    ]
    assert not (out / "results.jsonl").exists()


def test_train_task_routes_post_training_and_from_scratch_methods(tmp_path):
    from prunemip.study.tasks import train_task

    config = tiny_config(tmp_path, TINY.replace('name = "magnitude"', 'name = "gmp"'))
    dense_job, gmp_job = model_jobs(config)
    dense, dense_metrics = train_task(dense_job, None)
    assert dense.sparsity == 0.0 and 0.0 < dense_metrics["accuracy"] <= 1.0
    pruned, metrics = train_task(gmp_job, dense)  # gmp prunes during its own training run
    hidden_nnz = sum(layer.nnz for layer in pruned.layers[:-1])
    hidden_size = sum(layer.n_in * layer.n_out for layer in dense.layers[:-1])
    assert hidden_nnz == pytest.approx((1 - 0.8) * hidden_size, abs=2)
    assert metrics["sparsity_achieved"] == pytest.approx(1 - hidden_nnz / hidden_size)
    assert metrics["nnz"] == pruned.nnz and pruned.metadata["study_key"] == gmp_job.key
    structured = tiny_config(tmp_path, TINY.replace('name = "magnitude"', 'name = "neuron-magnitude"'))
    shrunk, metrics = train_task(model_jobs(structured)[1], dense)  # whole neurons removed
    assert shrunk.sparsity == 0.0 and shrunk.widths[1] < dense.widths[1]
    assert metrics["sparsity_achieved"] >= 0.8


@pytest.mark.parametrize(("bounds", "gradient_attack"), [("ia", False), ("linear", True)])
def test_solve_task_uses_the_configured_bounds_and_gradient_attack(bounds, gradient_attack):
    from prunemip.study.config import Perturbation
    from prunemip.study.jobs import SolveJob
    from prunemip.study.tasks import solve_task

    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(12, 6)), rng.normal(size=(3, 12))]
    biases = [rng.normal(size=12), np.zeros(3)]
    network = Network.from_arrays(weights, biases, InputSpec.create(6, 0.0, 1.0))
    x0 = rng.random(6)
    ball, target, mode, time_limit, seed = Perturbation("linf", 0.3), "untargeted", "optimize", 10.0, 0
    job = SolveJob("m", "d", 0, ball, target, mode, time_limit, bounds, seed, gradient_attack=gradient_attack)
    record = solve_task(network, x0, int(network.predict(x0)), job)
    assert record["bounds_stages"][-1] == bounds
    assert (record["pgd_seconds"] > 0) == gradient_attack
