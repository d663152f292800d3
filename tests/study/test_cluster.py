"""Studies in real processes: a Dask scheduler and two workers started with Dask's own command
line, one of them killed (SIGKILL) mid-run; and Ctrl-C sent to ``prunemip experiment run`` as a
terminal sends it, to the whole process group, mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from prunemip.study.config import load_config
from prunemip.study.jobs import job_keys
from prunemip.study.report import summarize
from prunemip.study.runner import ResultsLog
from tests.study.conftest import BIN, Start, free_port, wait_for
from tests.study.test_study import TINY

pytestmark = pytest.mark.slow

#: The tiny study, on five images and both balls, with a time limit no attack comes near.
STUDY = (
    TINY.replace("images = 3", "images = 5")
    .replace("radius = 0.05}]", 'radius = 0.05}, {norm = "l1", radius = 1.0}]')
    .replace("time_limit = 10", "time_limit = 120")
)
START_SECONDS = 60.0
RUN_SECONDS = 300.0
#: What a study's report decides, leaving out what the clock measures.
VERDICT_COLUMNS = ("architecture", "perturbation", "method", "sparsity", "accuracy_mean", "models")
VERDICT_COLUMNS += ("solved", "instances", "misclassified", "dense_timeouts_solved", "binaries", "found_rate")


@pytest.fixture
def study(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture
def cluster(start: Start, tmp_path: Path) -> tuple[str, dict[str, subprocess.Popen]]:
    """A scheduler and two single-threaded workers without nannies (a killed worker stays dead),
    each a process of its own; returns the scheduler's address and the worker processes by address."""
    from distributed import Client

    port = str(free_port())
    scheduler = ["scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
    start([str(BIN / "dask"), *scheduler], tmp_path / "scheduler.log")
    address = f"tcp://127.0.0.1:{port}"
    workers = {}
    for index in range(2):
        worker_port = str(free_port())
        worker = [address, "--host", "127.0.0.1", "--worker-port", worker_port, "--nthreads", "1"]
        worker += ["--no-nanny", "--no-dashboard", "--name", f"worker-{index}"]
        workers[f"tcp://127.0.0.1:{worker_port}"] = start(
            [str(BIN / "dask"), "worker", *worker], tmp_path / f"worker-{index}.log"
        )
    with Client(address, timeout=START_SECONDS) as client:
        client.wait_for_workers(2, timeout=START_SECONDS)
        assert set(client.scheduler_info()["workers"]) == set(workers)
    return address, workers


def results_lines(results: Path) -> int:
    return results.read_bytes().count(b"\n") if results.exists() else 0


def verdicts(results: Path) -> tuple[dict[str, str], list[tuple]]:
    """Per job its status (``trained`` for a model), and the report's rows without their timings."""
    records = ResultsLog(results).records()
    statuses = {record["key"]: record.get("status", "trained") for record in records}
    return statuses, [tuple(getattr(row, name) for name in VERDICT_COLUMNS) for row in summarize(records)]


def test_a_study_survives_a_worker_killed_mid_run(tmp_path, start, cluster, study):
    from distributed import Client

    address, workers = cluster
    keys = job_keys(load_config(study))
    faulty = tmp_path / "faulty"
    command = [str(BIN / "prunemip"), "experiment", "run", str(study), "--out", str(faulty)]
    run = start([*command, "--scheduler", address], tmp_path / "faulty.log")
    results = faulty / "results.jsonl"
    wait_for(lambda: results_lines(results) >= 1, RUN_SECONDS, "the first result")
    with Client(address, timeout=START_SECONDS) as client:  # the busiest worker dies
        busy = {worker: len(tasks) for worker, tasks in client.processing().items()}
    victim = max(workers, key=lambda worker: busy.get(worker, 0))
    os.kill(workers[victim].pid, signal.SIGKILL)
    assert busy.get(victim, 0) > 0 and results_lines(results) < len(keys)
    log = tmp_path / "faulty.log"
    assert run.wait(timeout=RUN_SECONDS) == 0, log.with_suffix(".err").read_text()
    assert workers[victim].poll() == -signal.SIGKILL
    written = [json.loads(line)["key"] for line in results.read_text().splitlines()]
    assert sorted(written) == sorted(keys)  # every job, exactly once
    assert f"{len(keys)} jobs run (" in log.read_text() and "0 failed" in log.read_text()

    calm = tmp_path / "calm"
    undisturbed = subprocess.run(
        [*command[:-1], str(calm), "--workers", "2"], capture_output=True, text=True, timeout=RUN_SECONDS
    )
    assert undisturbed.returncode == 0, undisturbed.stderr
    assert verdicts(results) == verdicts(calm / "results.jsonl")


def test_ctrl_c_mid_run_is_one_line_and_the_run_resumes(tmp_path, start, study):
    out = tmp_path / "run"
    command = [str(BIN / "prunemip"), "experiment", "run", str(study), "--workers", "2", "--out", str(out)]
    run = start(command, tmp_path / "run.log")
    results = out / "results.jsonl"
    wait_for(lambda: results_lines(results) >= 1, RUN_SECONDS, "the first result")
    os.killpg(run.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
    assert run.wait(timeout=RUN_SECONDS) == 130
    errors = (tmp_path / "run.err").read_text().splitlines()
    keys, done = job_keys(load_config(study)), results_lines(results)
    where = f"{done} of {len(keys)} jobs done (in {results})"
    assert errors == [f"prunemip: interrupted; {where}; run the same command again to resume"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(keys)} jobs (2 models), {done} already done" in resumed.stdout
    assert sorted(json.loads(line)["key"] for line in results.read_text().splitlines()) == sorted(keys)
