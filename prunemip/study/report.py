"""Tables and figures of a study, computed from its results file alone.

Per (architecture, perturbation, method, sparsity), a method with options (a regulariser,
say) being its own row, labelled ``name [key=value, ...]``:

* accuracy mean ± std over training seeds;
* #solved / total, where solved means "adversarial" or "robust" (images a model already
  misclassifies are counted apart and left out of the timings);
* shifted geometric mean time, ``exp(mean(log(t + 1))) − 1`` with time-outs counted at
  the limit (Achterberg's SGM with shift 1 s);
* median speed-up against the dense model of the same seed on the same images
  (``t_dense / t_model``, time-outs at the limit), and the share of the instances the dense
  MIP left unsolved that the model solves;
* mean #binaries, weight nnz and Σ big-M width; the adversarial-found rate.

A second table pools the perturbations per pruned (architecture, method, sparsity), with its
accuracy drop against dense in points, and names per architecture the best setting within an
accuracy budget (1.5 points by default): the study's goal is judged there.

Surrogate runs (Pham et al. 2025) get their own table: how often the pruned MIP yields an
input adversarial for the dense network, and how fast.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from prunemip.atomic import atomic_write_lines
from prunemip.errors import PrunemipError
from prunemip.study.jobs import DENSE, method_label
from prunemip.study.runner import ResultsLog

SOLVED = ("adversarial", "robust")
#: Accuracy a pruned setting may lose against dense, in points, to count for the study's goal.
ACCURACY_BUDGET = 1.5


def shifted_geometric_mean(times: Iterable[float], shift: float = 1.0) -> float:
    """``exp(mean(log(t + shift))) − shift``; NaN for no times.

    Args:
        times: the times, in seconds.
        shift: the shift s, in seconds (Achterberg's 1 s by default).

    Returns:
        The shifted geometric mean, in seconds.
    """
    values = np.asarray(list(times), dtype=np.float64)
    if values.size == 0:
        return math.nan
    return float(np.exp(np.mean(np.log(values + shift))) - shift)


def charged_time(record: dict[str, Any]) -> float:
    """The attack's time, or its time limit when it did not settle the question.

    Args:
        record: a solve record (``status``, ``seconds``, ``time_limit``).

    Returns:
        The time charged, in seconds.
    """
    return float(record["seconds"]) if record["status"] in SOLVED else float(record["time_limit"])


@dataclass(frozen=True)
class SummaryRow:
    architecture: str
    perturbation: str
    method: str
    sparsity: float
    accuracy_mean: float
    accuracy_std: float
    models: int
    solved: int
    instances: int
    misclassified: int
    sgm_seconds: float
    median_speedup: float
    dense_timeouts_solved: str
    binaries: float
    nnz: float
    bigm_width: float
    found_rate: float


def _setting(record: dict[str, Any]) -> tuple[str, str, str, float]:
    """(architecture, perturbation, method label, sparsity): what a row of the tables groups."""
    return (record["architecture"], record["perturbation"], method_label(record), record["sparsity"])


def _pair_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["architecture"],
        record["seed"],
        record["image"],
        record["perturbation"],
        record["solver_seed"],
    )


DenseTimes = dict[tuple[Any, ...], tuple[float, bool]]


def _accuracies(models: list[dict[str, Any]]) -> dict[tuple[str, str, float], list[float]]:
    """Test accuracies per (architecture, method label, sparsity), one per training seed."""
    accuracy: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for model in models:
        accuracy[(model["architecture"], method_label(model), model["sparsity"])].append(model["accuracy"])
    return accuracy


def _dense_times(solves: list[dict[str, Any]]) -> DenseTimes:
    """Per instance the dense model attacked: (charged time, whether it settled the question)."""
    return {
        _pair_key(r): (charged_time(r), r["status"] in SOLVED)
        for r in solves
        if r["method"] == DENSE and r["status"] != "misclassified"
    }


def _against_dense(attacked: list[dict[str, Any]], dense_times: DenseTimes) -> tuple[list[float], int, int]:
    """Speed-ups ``t_dense / t_model`` on the shared instances, and (#rescued, #dense unsolved)."""
    speedups, rescued, dense_unsolved = [], 0, 0
    for record in attacked:
        dense = dense_times.get(_pair_key(record))
        if dense is None:
            continue
        speedups.append(dense[0] / max(charged_time(record), 1e-9))
        if not dense[1]:
            dense_unsolved += 1
            rescued += record["status"] in SOLVED
    return speedups, rescued, dense_unsolved


def summarize(records: list[dict[str, Any]]) -> list[SummaryRow]:
    """One row per (architecture, perturbation, method, sparsity).

    Args:
        records: every record of the results file.

    Returns:
        The rows, dense first within each architecture and perturbation.

    Raises:
        PrunemipError: when there is no solve record.
    """
    models = [r for r in records if r.get("kind") == "model"]
    solves = [r for r in records if r.get("kind") == "solve"]
    if not solves:
        raise PrunemipError("the results file holds no solve records")
    accuracy = _accuracies(models)
    dense_times = _dense_times(solves)
    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for record in solves:
        groups[_setting(record)].append(record)
    rows = []
    for (architecture, perturbation, method, sparsity), group in sorted(groups.items(), key=_order):
        attacked = [r for r in group if r["status"] != "misclassified"]
        speedups, rescued, dense_unsolved = _against_dense(attacked, dense_times)
        accuracies = accuracy.get((architecture, method, sparsity), [])
        rows.append(
            SummaryRow(
                architecture=architecture,
                perturbation=perturbation,
                method=method,
                sparsity=sparsity,
                accuracy_mean=float(np.mean(accuracies)) if accuracies else math.nan,
                accuracy_std=float(np.std(accuracies)) if accuracies else math.nan,
                models=len(accuracies),
                solved=sum(r["status"] in SOLVED for r in attacked),
                instances=len(attacked),
                misclassified=len(group) - len(attacked),
                sgm_seconds=shifted_geometric_mean(charged_time(r) for r in attacked),
                median_speedup=statistics.median(speedups) if speedups else math.nan,
                dense_timeouts_solved=f"{rescued}/{dense_unsolved}",
                binaries=_mean(r["binaries"] for r in attacked),
                nnz=_mean(_model_nnz(models, r) for r in group),
                bigm_width=_mean(r["bigm_width"] for r in attacked),
                found_rate=_mean(float(r["found"]) for r in attacked),
            )
        )
    return rows


def _order(item: tuple[tuple[str, str, str, float], Any]) -> tuple[Any, ...]:
    architecture, perturbation, method, sparsity = item[0]
    return (architecture, perturbation, method != DENSE, method, sparsity)


@dataclass(frozen=True)
class PooledRow:
    architecture: str
    method: str
    sparsity: float
    accuracy_drop: float
    within_budget: bool
    solved: int
    instances: int
    median_speedup: float
    dense_timeouts: int
    dense_timeouts_solved: int


def summarize_pooled(
    records: list[dict[str, Any]], accuracy_budget: float = ACCURACY_BUDGET
) -> list[PooledRow]:
    """One row per pruned (architecture, method, sparsity), every perturbation and seed pooled.

    ``accuracy_drop`` is ``100 · (mean dense accuracy − mean accuracy)`` in points;
    ``within_budget`` says it is at most ``accuracy_budget``. Per architecture the settings
    within budget come first, by decreasing median speed-up (then more dense time-outs solved).

    Args:
        records: every record of the results file.
        accuracy_budget: the accuracy a setting may lose against dense, in points.

    Returns:
        The rows, ordered as above.
    """
    models = [r for r in records if r.get("kind") == "model"]
    solves = [r for r in records if r.get("kind") == "solve" and r["status"] != "misclassified"]
    accuracy = _accuracies(models)
    dense_accuracy = {arch: np.mean(acc) for (arch, method, _), acc in accuracy.items() if method == DENSE}
    dense_times = _dense_times(solves)
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for record in solves:
        if record["method"] != DENSE:
            groups[(record["architecture"], method_label(record), record["sparsity"])].append(record)
    rows = []
    for (architecture, method, sparsity), group in groups.items():
        accuracies = accuracy.get((architecture, method, sparsity))
        reference = dense_accuracy.get(architecture)
        # Rounded so that a drop of exactly the budget (0.900 → 0.885 for 1.5) counts as within it.
        known = accuracies and reference is not None
        drop = round(100.0 * (reference - np.mean(accuracies)), 9) if known else math.nan
        speedups, rescued, dense_unsolved = _against_dense(group, dense_times)
        rows.append(
            PooledRow(
                architecture=architecture,
                method=method,
                sparsity=sparsity,
                accuracy_drop=float(drop),
                within_budget=bool(drop <= accuracy_budget),
                solved=sum(r["status"] in SOLVED for r in group),
                instances=len(group),
                median_speedup=statistics.median(speedups) if speedups else math.nan,
                dense_timeouts=dense_unsolved,
                dense_timeouts_solved=rescued,
            )
        )
    return sorted(rows, key=lambda row: (row.architecture, not row.within_budget, _fastest_first(row)))


def _fastest_first(row: PooledRow) -> tuple[float, int]:
    """Sort key: larger median speed-up first, then more dense time-outs solved."""
    speedup = 0.0 if math.isnan(row.median_speedup) else row.median_speedup
    return (-speedup, -row.dense_timeouts_solved)


def best_within_budget(rows: list[PooledRow]) -> dict[str, PooledRow]:
    """Per architecture, the setting within the accuracy budget with the largest median speed-up.

    Args:
        rows: the rows of :func:`summarize_pooled`.

    Returns:
        The best row per architecture (architectures with none within budget are absent).
    """
    best: dict[str, PooledRow] = {}
    for row in rows:
        if not row.within_budget or math.isnan(row.median_speedup):
            continue
        current = best.get(row.architecture)
        if current is None or _fastest_first(row) < _fastest_first(current):
            best[row.architecture] = row
    return best


def _mean(values: Iterable[float | None]) -> float:
    """Mean of the values that are known (None: not measured, e.g. no MIP was built)."""
    data = [v for v in values if v is not None]
    return float(np.mean(data)) if data else math.nan


def _model_nnz(models: list[dict[str, Any]], solve: dict[str, Any]) -> float:
    for model in models:
        if model["key"] == solve["model_key"]:
            return float(model["nnz"])
    return math.nan


@dataclass(frozen=True)
class SurrogateRow:
    architecture: str
    perturbation: str
    method: str
    sparsity: float
    instances: int
    found_for_dense: int
    median_seconds_to_found: float
    dense_found: int


def summarize_surrogates(records: list[dict[str, Any]]) -> list[SurrogateRow]:
    """How often, and how fast, the pruned MIP yields an input adversarial for the dense network.

    Args:
        records: every record of the results file.

    Returns:
        One row per (architecture, perturbation, method, sparsity) with surrogate records.
    """
    dense_found = {
        _pair_key(r): r["found"] for r in records if r.get("kind") == "solve" and r["method"] == DENSE
    }
    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("kind") == "surrogate" and record["status"] != "misclassified":
            groups[_setting(record)].append(record)
    rows = []
    for (architecture, perturbation, method, sparsity), group in sorted(groups.items()):
        found = [r for r in group if r["found"]]
        rows.append(
            SurrogateRow(
                architecture,
                perturbation,
                method,
                sparsity,
                len(group),
                len(found),
                statistics.median(r["seconds"] for r in found) if found else math.nan,
                sum(bool(dense_found.get(_pair_key(r))) for r in group),
            )
        )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[Any], empty: str = "no rows") -> str:
    """A Markdown table of dataclass rows, one column per field.

    Args:
        rows: rows of one dataclass type.
        empty: what to say when there is no row.

    Returns:
        The table, ending with a newline (``(empty)`` for no row).
    """
    if not rows:
        return f"({empty})\n"
    headers = list(asdict(rows[0]))
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in asdict(row).values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv_lines(rows: list[Any], row_type: type) -> list[str]:
    """The CSV lines of dataclass rows: the header (``row_type``'s fields), even for no row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[column.name for column in fields(row_type)])
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return buffer.getvalue().splitlines()


def _best_lines(rows: list[PooledRow], accuracy_budget: float) -> list[str]:
    best = best_within_budget(rows)
    lines = []
    for architecture in sorted({row.architecture for row in rows}):
        row = best.get(architecture)
        if row is None:
            lines.append(f"* {architecture}: no pruned setting within {accuracy_budget:g} points of dense.")
            continue
        share = f"{row.dense_timeouts_solved}/{row.dense_timeouts}"
        accuracy = f"accuracy {-row.accuracy_drop:+.2f} points"
        lines.append(
            f"* {architecture}: {row.method} at {row.sparsity:g} ({accuracy}): "
            f"median speed-up {row.median_speedup:.3g}×, dense time-outs solved {share}."
        )
    return lines


def _no_surrogates(records: list[dict[str, Any]]) -> str:
    """Why the surrogate table has no row."""
    if any(record.get("kind") == "surrogate" for record in records):
        return "every image of the surrogate runs is misclassified by its model"
    return "no surrogate runs: the study's attack.surrogate is false"


def write_report(
    results: str | Path, out_dir: str | Path | None = None, *, accuracy_budget: float = ACCURACY_BUDGET
) -> list[Path]:
    """Write ``report.md``, the CSV tables (summary, pooled, surrogate) and the figures.

    Args:
        results: the study's ``results.jsonl``.
        out_dir: the folder to write into (default: ``report/`` beside ``results``).
        accuracy_budget: the accuracy a pruned setting may lose against dense, in points.

    Returns:
        The paths written.

    Raises:
        PrunemipError: when the results file is missing or holds no solve record.
    """
    path = Path(results)
    if not path.is_file():
        raise PrunemipError(f"results file {path} does not exist")
    records = ResultsLog(path).records()
    folder = Path(out_dir) if out_dir else path.parent / "report"
    folder.mkdir(parents=True, exist_ok=True)
    rows = summarize(records)
    pooled = summarize_pooled(records, accuracy_budget)
    surrogates = summarize_surrogates(records)
    written = [
        atomic_write_lines(folder / "summary.csv", _csv_lines(rows, SummaryRow)),
        atomic_write_lines(folder / "pooled.csv", _csv_lines(pooled, PooledRow)),
        atomic_write_lines(folder / "surrogate.csv", _csv_lines(surrogates, SurrogateRow)),
    ]
    from prunemip.study.figures import write_figures

    figures = write_figures(records, rows, folder, accuracy_budget)
    text = [
        f"# Study report: {path}",
        "",
        "Times are shifted geometric means (shift 1 s, time-outs at the limit); speed-ups are medians of",
        "dense/model time on the same images; `dense_timeouts_solved` counts instances the dense MIP left",
        "unsolved that this model solved. Target rule: "
        + ", ".join(sorted({str(r.get("target_rule")) for r in records if r.get("kind") == "solve"}))
        + " (with `runner-up`, robust means no input of the region makes the runner-up class win).",
        "",
        markdown_table(rows),
        "## Pruned settings, perturbations pooled",
        "",
        f"`accuracy_drop` is in points against dense; `within_budget`: at most {accuracy_budget:g} points.",
        "The best setting within budget per architecture (largest median speed-up):",
        "",
        *_best_lines(pooled, accuracy_budget),
        "",
        markdown_table(pooled, "no pruned setting has an attacked image"),
        "## Surrogate: pruned MIP, incumbents checked on the dense network",
        "",
        markdown_table(surrogates, _no_surrogates(records)),
        "## Figures",
        "",
        *(f"![{path.stem}]({path.name})" for path in figures.paths if path.suffix == ".png"),
        *(f"* `{stem}.png` not drawn: {why}." for stem, why in figures.skipped),
    ]
    written.append(atomic_write_lines(folder / "report.md", text))
    return written + figures.paths
