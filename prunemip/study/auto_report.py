"""The automatic search's Pareto report: the candidates' table (rich and CSV) and their plot (PNG).

The plot puts each candidate at (MIP-cost proxy, validation accuracy), one marker per
method family, with the Pareto front (no other candidate is both cheaper and more
accurate), the budget line ``a_d − b/100`` and the chosen network marked.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.table import Table

from prunemip.atomic import atomic_write_bytes, atomic_write_lines
from prunemip.study.search_space import SearchResult

#: The CSV's columns, in order (the keys of :meth:`SearchResult.rows`).
COLUMNS: tuple[str, ...] = (
    "candidate",
    "method",
    "sparsity",
    "rs_weight",
    "sparsity_achieved",
    "round",
    "epochs",
    "val_accuracy",
    "loss_points",
    "margin_points",
    "within_budget",
    "unstable",
    "bigm_width",
    "nnz",
    "n_inputs",
    "proxy",
    "chosen",
)
MARKERS = {"dense": "s", "magnitude": "o", "gmp": "^", "imp": "D", "neuron-magnitude": "v"}


def candidates_table(result: SearchResult) -> Table:
    """The candidates as a rich table, the chosen row in bold.

    Args:
        result: the search's outcome.

    Returns:
        The table: setting, epochs, validation accuracy, loss and its confidence margin,
        unstable neurons, nnz, proxy.
    """
    table = Table(
        title=(
            f"Automatic search: {len(result.evaluations) - 1} candidates, budget {result.budget:g} points "
            f"at {result.space.confidence:.0%} confidence, proxy {result.space.proxy}"
        )
    )
    columns = ("candidate", "epochs", "val acc.", "loss (pts)", "margin", "unstable", "nnz", "proxy", "")
    for column in columns:
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for row in sorted(result.rows(), key=lambda r: (not r["within_budget"], r["proxy"])):
        mark = "chosen" if row["chosen"] else ("" if row["within_budget"] else "over budget")
        table.add_row(
            row["candidate"],
            str(row["epochs"]),
            f"{row['val_accuracy']:.4f}",
            f"{-row['loss_points']:+.2f}",
            f"{row['margin_points']:.2f}",
            f"{row['unstable']:.1f}",
            str(row["nnz"]),
            f"{row['proxy']:.4g}",
            mark,
            style="bold" if row["chosen"] else None,
        )
    return table


def write_candidates(result: SearchResult, stem: str | Path) -> list[Path]:
    """Write ``<stem>.csv`` (one row per candidate) and ``<stem>.png`` (the Pareto plot).

    Args:
        result: the search's outcome.
        stem: the files' path without suffix.

    Returns:
        The two paths.
    """
    stem = Path(stem)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows())
    csv_path = atomic_write_lines(stem.with_name(f"{stem.name}.csv"), buffer.getvalue().splitlines())
    return [csv_path, _plot(result, stem.with_name(f"{stem.name}.png"))]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) points no other point beats on both (cheaper or equal and more accurate).

    Args:
        points: (cost, accuracy) pairs.

    Returns:
        The front, by increasing cost (and accuracy).
    """
    front: list[tuple[float, float]] = []
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or score > front[-1][1]:
            front.append((cost, score))
    return front


def _plot(result: SearchResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.rows()
    figure, axis = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
    for method, marker in MARKERS.items():
        mine = [r for r in rows if r["method"] == method]
        if mine:
            xs = [r["proxy"] for r in mine]
            ys = [100 * r["val_accuracy"] for r in mine]
            axis.scatter(xs, ys, marker=marker, label=method, alpha=0.75)
    front = pareto_front([(r["proxy"], 100 * r["val_accuracy"]) for r in rows])
    axis.step(*zip(*front, strict=True), where="post", color="gray", linewidth=0.8, label="Pareto front")
    floor = 100 * result.dense.accuracy - result.budget
    axis.axhline(
        floor, color="tab:red", linestyle="--", linewidth=0.8, label=f"dense − {result.budget:g} points"
    )
    chosen = next(r for r in rows if r["chosen"])
    point = (chosen["proxy"], 100 * chosen["val_accuracy"])
    axis.scatter(
        *point, marker="*", s=260, facecolors="none", edgecolors="black", linewidths=1.4, label="chosen"
    )
    axis.annotate(chosen["candidate"], point, textcoords="offset points", xytext=(8, -12), fontsize=8)
    if all(r["proxy"] > 0 for r in rows) and max(r["proxy"] for r in rows) > 20 * min(
        r["proxy"] for r in rows
    ):
        axis.set_xscale("log")
    lowest = min(100 * r["val_accuracy"] for r in rows)
    bottom = max(lowest, floor - 3 * max(result.budget, 1.0))
    axis.set_ylim(bottom - 0.5, 100 * result.dense.accuracy + 1.0)
    below = sum(100 * r["val_accuracy"] < bottom for r in rows)
    if below:
        axis.text(0.01, 0.01, f"{below} below the axis", transform=axis.transAxes, fontsize=7, color="gray")
    axis.set_xlabel(f"MIP-cost proxy ({result.space.proxy}, linear bounds)")
    axis.set_ylabel("validation accuracy (%)")
    axis.set_title("Candidates: validation accuracy against MIP cost")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
