"""Run a study on Dask: train every model, then attack every (model, image) pair.

* Local cluster by default (``workers`` processes, one thread each), or any existing
  cluster by scheduler address, so a grid of long solves spreads over many machines.
  Tasks carry their inputs (networks, images), so workers need no shared file system.
* Only the client writes: one JSON line per finished job, flushed and fsynced, plus each
  trained network as ``models/<key>.npz``. A re-run skips every job whose key is already
  in the results file, so Ctrl-C loses at most the jobs in flight.
* A worker that dies takes nothing with it: Dask runs its jobs again elsewhere, and every
  network a later job needs is a task (a model trained by an earlier run too, not scattered
  data), so the scheduler can compute it again when every copy was on dead workers.
* Ctrl-C stops the run between two jobs and closes the cluster; the local workers do not
  see it (they would each print a traceback), so one line says what happened.
* A progress bar shows jobs done, solved, timed out and the ETA, and one row per model in
  training shows its step, epoch, test accuracy and ETA, from the workers' epoch events.
  Where the console is not a terminal (a log file, a batch system), each finished job and
  each epoch is one time-stamped line instead, so a long run's log shows where it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from prunemip import interrupts
from prunemip.data import load_dataset
from prunemip.model_io import load_network, save_network
from prunemip.study.config import StudyConfig
from prunemip.study.jobs import ModelJob, SolveJob, job_keys, model_jobs, solve_jobs
from prunemip.study.tasks import TRAINING_TOPIC, solve_task, train_task

RESULTS = "results.jsonl"
#: The log level of Dask in a local cluster: above every level, so silent. The runner reports each
#: failed job itself; what the workers would add are the complaints of a cluster closed mid-job.
QUIET = logging.CRITICAL + 1
#: How often the runner looks for finished jobs and for Ctrl-C, in seconds.
POLL_SECONDS = 0.1
DECIDED = ("adversarial", "robust", "misclassified")

EpochHook = Callable[[ModelJob, str, dict[str, Any]], None]


class ResultsLog:
    """An append-only JSON-lines file; every line is fsynced before the job counts as done.

    A line torn by a crash is ignored on reading and the file is re-terminated before the
    next append, so the log never holds a half record that looks complete.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
        return records

    def keys(self) -> set[str]:
        return {record["key"] for record in self.records() if "key" in record}

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line and fsync it (re-terminating a torn last line first).

        Args:
            record: a JSON-serialisable record.
        """
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())


class TrainingRows:
    """One progress row per model in training, fed by the epoch events of the workers.

    A row shows the training step (``pretrain``, ``finetune``, ...), its epoch out of the
    step's epochs, the last test accuracy and seconds per epoch; it restarts at each new
    step and goes when the model is done. A model done already trains again only when the
    worker holding it died (Dask recomputes what its later jobs need): that gets no row.
    """

    def __init__(self, progress: Progress, models: list[ModelJob], on_epoch: EpochHook | None) -> None:
        self.progress = progress
        self.plain = not progress.console.is_terminal
        self.models = {model.key: model for model in models}
        self.on_epoch = on_epoch
        self.rows: dict[str, tuple[TaskID, str]] = {}
        self.done: set[str] = set()

    def event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Handle one ``(timestamp, message)`` event of :data:`TRAINING_TOPIC`.

        Args:
            event: the Dask event; its message holds the model key, step and epoch row.
        """
        message = event[1]
        model = self.models.get(message.get("key", ""))
        if model is None:  # another study's event on a shared cluster
            return
        step, epoch, epochs = str(message["step"]), int(message["epoch"]), int(message["epochs"])
        accuracy = f", test {message['test_accuracy']:.4f}" if "test_accuracy" in message else ""
        stats = f"{step} epoch {epoch}/{epochs}{accuracy}, {message['seconds']:.1f} s/epoch"
        again = model.key in self.done
        if self.plain:
            lost = " again (the worker holding it died)" if again else ""
            _log_line(self.progress.console, f"train {model.label}{lost}: {stats}")
        if not again:
            self._show(model, step, (epoch, epochs), stats)
        if self.on_epoch is not None:
            self.on_epoch(model, step, message)

    def _show(self, model: ModelJob, step: str, epoch: tuple[int, int], stats: str) -> None:
        """Move ``model``'s row to ``epoch`` (done, of the step's total), starting it or its step anew."""
        row = self.rows.get(model.key)
        if row is None:
            task = self.progress.add_task(
                f"train {escape(model.label)}", total=epoch[1], completed=epoch[0], stats=stats
            )
        else:
            task = row[0]
            if row[1] != step:
                self.progress.reset(task, total=epoch[1])
            self.progress.update(task, completed=epoch[0], stats=stats)
        self.rows[model.key] = (task, step)

    def finish(self, model: ModelJob) -> None:
        """Remove ``model``'s progress row, if it has one.

        Args:
            model: the model job that finished.
        """
        self.done.add(model.key)
        row = self.rows.pop(model.key, None)
        if row is not None:
            self.progress.remove_task(row[0])


@dataclass
class RunSummary:
    jobs: int
    skipped: int
    completed: int = 0
    decided: int = 0
    timeouts: int = 0
    failed: int = 0
    seconds: float = 0.0


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A client on an existing scheduler, or on a local cluster of single-threaded processes.

    Args:
        workers: worker processes of the local cluster.
        scheduler: an existing scheduler's address (``None``: start a local cluster).

    Yields:
        The ``distributed.Client``; a local cluster closes with it.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with contextlib.ExitStack() as stack:
        with _interrupts_held():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # No dashboard; the scheduler's HTTP server (health, metrics) on any free local port,
                # rather than on 8787 with a warning when another cluster holds it.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=QUIET,
            )
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster))
        yield client


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Block SIGINT in this thread while a local cluster starts, so that Ctrl-C reaches this process only.

    Threads started meanwhile (the cluster's event loop, the threads that spawn and later
    restart worker processes) inherit the blocked signal, and so do the worker processes: a
    terminal's Ctrl-C, sent to the whole process group, then interrupts the client alone, which
    closes the cluster, rather than every worker printing its own traceback. A Ctrl-C during the
    start waits until the cluster is up and is raised on leaving, inside the caller's ``with``.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    # Started from a thread that blocks SIGINT, the tracker would unblock it there (bpo-33613).
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _model_record(job: ModelJob, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "model", "key": job.key, "dataset": job.dataset, **job.describe(), **metrics}


def _solve_record(job: SolveJob, model: ModelJob, label: int, outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "surrogate" if job.surrogate else "solve",
        "key": job.key,
        "model_key": job.model_key,
        **model.describe(),
        "image": job.image,
        "label": label,
        "norm": job.perturbation.norm,
        "radius": job.perturbation.radius,
        "perturbation": job.perturbation.label,
        "target_rule": job.target,
        "mode": job.mode,
        "time_limit": job.time_limit,
        "solver_seed": job.solver_seed,
        **outcome,
    }


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    console: Console | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: EpochHook | None = None,
) -> RunSummary:
    """Run every unfinished job of ``config``; results go to ``out_dir/results.jsonl``.

    Args:
        config: the study.
        out_dir: the study's folder (results, ``config.json``, ``models/``); created if needed.
        workers: worker processes of the local cluster.
        scheduler: an existing Dask scheduler's address (``None``: a local cluster).
        console: where progress goes (default: a new rich console).
        on_record: sees each record as it is written.
        on_epoch: sees each training epoch as ``(model job, step, epoch row)``.

    Returns:
        The counts of jobs, skipped, completed, decided, timed out and failed, and the time.
    """
    console = console or Console()
    start = time.perf_counter()
    folder = Path(out_dir)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))
    log = ResultsLog(folder / RESULTS)
    done = log.keys()
    test = load_dataset(config.dataset, "test", data_dir=config.data_dir, seed=config.split_seed)
    images, labels = test.flat()[: config.attack.images], test.labels[: config.attack.images]

    models = model_jobs(config)
    all_keys = job_keys(config)
    summary = RunSummary(jobs=len(all_keys), skipped=sum(key in done for key in all_keys))
    pending_count = summary.jobs - summary.skipped
    console.print(
        f"study {config.name}: {summary.jobs} jobs ({len(models)} models), "
        f"{summary.skipped} already done, {pending_count} to run"
    )
    if pending_count == 0:
        summary.seconds = time.perf_counter() - start
        return summary

    with (
        interrupts.deferred(),
        dask_client(workers, scheduler) as client,
        _progress(console) as progress,
    ):
        bar = progress.add_task("jobs", total=pending_count, stats="")
        training = TrainingRows(progress, models, on_epoch)
        client.subscribe_topic(TRAINING_TOPIC, training.event)
        futures = _submit(client, config, folder, done, (images, labels))
        for future in _as_finished(list(futures)):
            kind, payload = futures.pop(future)
            if kind == "model":
                training.finish(payload)
            record = _record_of(future, kind, payload, folder, console)
            if record is None:
                summary.failed += 1
            else:
                log.append(record)
                summary.completed += 1
                status = record.get("status")
                summary.decided += status in DECIDED
                summary.timeouts += status == "timeout"
                if on_record is not None:
                    on_record(record)
                if not console.is_terminal:
                    count = f"[{summary.completed + summary.failed}/{pending_count}]"
                    _log_line(console, f"{count} {_finished(kind, payload, record)}")
            progress.update(
                bar,
                advance=1,
                stats=f"solved {summary.decided}, timed out {summary.timeouts}, failed {summary.failed}",
            )
    summary.seconds = time.perf_counter() - start
    return summary


def _submit(
    client: Any, config: StudyConfig, folder: Path, done: set[str], test: tuple[np.ndarray, np.ndarray]
) -> dict[Any, tuple[str, Any]]:
    """Submit every job of ``config`` not in ``done``: each model's training, then its attacks.

    A model trained by an earlier run is loaded from ``models/`` and handed to the cluster as a
    task of its own rather than scattered, so that the scheduler can compute it again when the
    worker holding it dies (scattered data would be lost with it, and every attack on it).

    Returns:
        Each job's future, with ``("model", model job)`` or ``("solve", (job, model, label))``.
    """
    images, labels = test
    networks: dict[str, Any] = {}
    futures: dict[Any, tuple[str, Any]] = {}
    for model in model_jobs(config):
        path = folder / "models" / f"{model.key}.npz"
        if model.key in done and path.exists():
            networks[model.key] = client.submit(_same, load_network(path), key=f"network-{model.key}")
        else:
            dense = None if model.is_dense else networks[model.dense_job().key]
            trained = client.submit(train_task, model, dense, key=f"train-{model.key}", pure=False)
            networks[model.key] = client.submit(_first, trained, key=f"network-{model.key}", pure=False)
            futures[trained] = ("model", model)
        for job in solve_jobs(config, model):
            if job.key in done:
                continue
            x0, label = images[job.image], int(labels[job.image])
            if job.surrogate:
                args = (networks[model.key], networks[job.dense_key], x0, label, job)
                future = client.submit(_surrogate, *args, key=f"solve-{job.key}", pure=False)
            else:
                future = client.submit(
                    solve_task, networks[model.key], x0, label, job, key=f"solve-{job.key}"
                )
            futures[future] = ("solve", (job, model, label))
    return futures


def _as_finished(futures: list[Any]) -> Iterator[Any]:
    """The futures as they finish; a first Ctrl-C (:func:`prunemip.interrupts.deferred`) raises
    ``KeyboardInterrupt`` here, between two jobs, within :data:`POLL_SECONDS`.

    A ``KeyboardInterrupt`` raised inside one of Dask's blocking calls (a submit, a result)
    leaves the client's event loop with a half-cancelled call that logs tracebacks; raised
    here instead, it lets the runner cancel the jobs in flight and close the cluster cleanly.
    """
    from distributed import as_completed

    queue = as_completed(futures)
    while not queue.is_empty():
        if interrupts.requested():
            raise KeyboardInterrupt
        batch = queue.next_batch(block=False)
        if not batch:
            time.sleep(POLL_SECONDS)
        yield from batch


def _log_line(console: Console, text: str) -> None:
    console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, highlight=False)


def _finished(kind: str, payload: Any, record: dict[str, Any]) -> str:
    """One line on a finished job: the model trained, or the attack's verdict and time."""
    if kind == "model":
        return f"trained {payload.label}: accuracy {record['accuracy']:.4f}, {record['train_seconds']:.0f} s"
    job, model, _ = payload
    surrogate = " (surrogate)" if job.surrogate else ""
    return (
        f"{model.label}, image {job.image}, {job.perturbation.label}{surrogate}: "
        f"{record.get('status')}, {record.get('seconds', 0.0):.1f} s"
    )


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _same(network: Any) -> Any:
    return network


def _surrogate(pruned: Any, dense: Any, x0: Any, label: int, job: SolveJob) -> dict[str, Any]:
    from prunemip.study.surrogate import surrogate_task

    return surrogate_task(pruned, dense, x0, label, job)


def _record_of(future: Any, kind: str, payload: Any, folder: Path, console: Console) -> dict[str, Any] | None:
    """The record of a finished future; ``None`` (reported, not recorded) when the task failed.

    A failed job is not written, so the next run retries it.
    """
    try:
        result = future.result()
    except Exception as error:  # one failed task must not stop the others
        console.print(f"[red]job {future.key} failed:[/red] {type(error).__name__}: {error}")
        return None
    if kind == "model":
        network, metrics = result
        save_network(network, folder / "models" / f"{payload.key}.npz")
        return _model_record(payload, metrics)
    job, model, label = payload
    return _solve_record(job, model, label, result)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
