"""``prunemip experiment validate|run|report``: a study grid (TOML config) on Dask, and its report."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from prunemip.cli.arguments import Parser, examples, nonnegative_float
from prunemip.errors import PrunemipError

if TYPE_CHECKING:
    from prunemip.study.config import StudyConfig


#: Example command lines of each step: its own ``--help`` shows them, ``experiment --help`` all of them.
_EXAMPLES = {
    "validate": ("prunemip experiment validate experiments/cacciola_fashion.toml",),
    "run": (
        "prunemip experiment run experiments/cacciola_fashion.toml --workers 2 --out runs/cacciola",
        "prunemip experiment run experiments/cacciola_fashion.toml --scheduler tcp://10.0.0.5:8786",
    ),
    "report": (
        "prunemip experiment report runs/cacciola/results.jsonl",
        "prunemip experiment report runs/cacciola/results.jsonl -o runs/cacciola/report --accuracy-budget 1",
    ),
}


def _add_step(steps: Any, formatter: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """The parser of one step, its help line as its description and its examples as its epilog."""
    return steps.add_parser(
        name, formatter_class=formatter, help=summary, description=summary, epilog=examples(*_EXAMPLES[name])
    )


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``experiment`` and its steps ``validate``, ``run`` and ``report``.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    experiment = commands.add_parser(
        "experiment",
        formatter_class=formatter,
        help="run a study grid on Dask and report it",
        description=(
            "Train every model of a study config (TOML) and attack every (model, image) pair on a Dask\n"
            "cluster; results are appended to RUN_DIR/results.jsonl and a re-run skips finished jobs."
        ),
        epilog=examples(*(line for lines in _EXAMPLES.values() for line in lines)),
    )
    steps = experiment.add_subparsers(dest="step", required=True, metavar="STEP", parser_class=Parser)
    validate = _add_step(steps, formatter, "validate", "check a config and count its jobs")
    validate.add_argument("config", help="study config (.toml)")
    run_step = _add_step(steps, formatter, "run", "run (or resume) a study")
    run_step.add_argument("config", help="study config (.toml)")
    run_step.add_argument("--out", help="run folder (default runs/<study name>)")
    run_step.add_argument("--workers", type=int, default=2, help="local Dask worker processes (2)")
    run_step.add_argument(
        "--scheduler", help="address of an existing Dask scheduler instead of a local cluster"
    )
    report = _add_step(steps, formatter, "report", "tables (Markdown, CSV) and figures from a results file")
    report.add_argument("results", help="results.jsonl of a run")
    report.add_argument("-o", "--out", help="output folder (default: report/ beside the results)")
    report.add_argument(
        "--accuracy-budget",
        type=nonnegative_float,
        default=1.5,
        metavar="POINTS",
        help="accuracy a pruned setting may lose against dense to count as best (1.5 points)",
    )


def run(args: argparse.Namespace, console: Console) -> None:
    """Validate a config (count its jobs), run or resume a study, or write a study's report.

    Args:
        args: the parsed command line.
        console: where counts, progress and the summary go.
    """
    from prunemip.study.config import load_config
    from prunemip.study.jobs import model_jobs, solve_jobs

    if args.step == "report":
        from prunemip.study.report import write_report

        paths = write_report(args.results, args.out, accuracy_budget=args.accuracy_budget)
        console.print(f"wrote {len(paths)} files in {paths[0].parent}")
        return
    config = load_config(args.config)
    models = model_jobs(config)
    solves = sum(len(solve_jobs(config, model)) for model in models)
    if args.step == "validate":
        console.print(f"{args.config}: study {config.name!r}, {len(models)} models, {solves} attack jobs")
        return
    from prunemip.study.runner import run_study

    if args.workers < 1:
        raise PrunemipError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out) if args.out else Path("runs") / config.name
    try:
        summary = run_study(config, out, workers=args.workers, scheduler=args.scheduler, console=console)
    except KeyboardInterrupt:
        print(f"prunemip: {_interrupted(config, out)}", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None  # as a shell reports Ctrl-C
    console.print(
        f"{summary.completed} jobs run ({summary.decided} decided, {summary.timeouts} timed out, "
        f"{summary.failed} failed), {summary.skipped} skipped, {summary.seconds:.0f} s; "
        f"next: prunemip experiment report {out / 'results.jsonl'}"
    )


def _interrupted(config: StudyConfig, out: Path) -> str:
    """The one line after Ctrl-C: how many of the study's jobs are done, where, and how to go on."""
    from prunemip.study.jobs import job_keys
    from prunemip.study.runner import RESULTS, ResultsLog

    results = ResultsLog(out / RESULTS)
    keys = job_keys(config)
    done = len(set(keys) & results.keys())
    where = f" (in {results.path})" if results.path.exists() else ""
    return f"interrupted; {done} of {len(keys)} jobs done{where}; run the same command again to resume"
