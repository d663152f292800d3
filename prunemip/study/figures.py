"""The study's figures (matplotlib, PNG and SVG), drawn from the results records alone.

A figure with nothing to draw is not written (an older copy is removed) and
:func:`write_figures` says why, so the report can tell the reader; a panel of a figure that
has no point (one perturbation, say) says so on its axes.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunemip.atomic import atomic_write_bytes
from prunemip.study.jobs import DENSE, method_label

MAX_EXAMPLES = 6
SUFFIXES = ("png", "svg")
MARKERS = "osD^vP*X"


@dataclass
class Figures:
    """The files written, and one line per figure left out: ``(stem, why)``."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, folder: Path, stem: str, figure: Any | None, why: str) -> None:
        """Save ``figure`` as ``stem`` (PNG and SVG), or, when it is None, record ``why`` it is not.

        Args:
            folder: where the files go.
            stem: the file name without suffix.
            figure: the matplotlib figure, or None when there is nothing to draw.
            why: the reason given when ``figure`` is None.
        """
        if figure is not None:
            self.paths += _save(figure, folder, stem)
            return
        self.skipped.append((stem, why))
        for suffix in SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                (folder / f"{stem}.{suffix}").unlink()  # a figure an earlier report drew


def _save(figure: Any, folder: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for suffix in SUFFIXES:
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix, dpi=120, bbox_inches="tight")
        paths.append(atomic_write_bytes(folder / f"{stem}.{suffix}", buffer.getvalue()))
    plt.close(figure)
    return paths


def _note(axis: Any, text: str) -> None:
    """Write ``text`` in the middle of an axis that has nothing to show."""
    axis.text(0.5, 0.5, text, transform=axis.transAxes, ha="center", va="center", wrap=True, color="gray")
    axis.set_xticks([])
    axis.set_yticks([])


def _series(rows: list[Any], value: str) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """(architecture, perturbation, method) → [(sparsity, value)] by sparsity, from the dense point
    on; unknown (NaN) values are left out, and so are methods without a known pruned point."""
    dense = {(r.architecture, r.perturbation): getattr(r, value) for r in rows if r.method == DENSE}
    pruned: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        known = getattr(row, value)
        if row.method != DENSE and not math.isnan(known):
            pruned[(row.architecture, row.perturbation, row.method)].append((row.sparsity, known))
    series = {}
    for key, points in sorted(pruned.items()):
        start = dense.get(key[:2], math.nan)
        series[key] = sorted(points if math.isnan(start) else [(0.0, start), *points])
    return series


def _line_plot(rows: list[Any], value: str, ylabel: str, log: bool, missing: str) -> Any | None:
    """One panel per perturbation, ``value`` against sparsity per (architecture, method); None when
    no panel has a point."""
    import matplotlib.pyplot as plt

    perturbations = sorted({r.perturbation for r in rows})
    series = _series(rows, value)
    if not series:
        return None
    figure, axes = plt.subplots(
        1, len(perturbations), figsize=(5 * len(perturbations), 4), squeeze=False, layout="constrained"
    )
    for axis, perturbation in zip(axes[0], perturbations, strict=True):
        axis.set_title(perturbation)
        drawn = [(key, points) for key, points in series.items() if key[1] == perturbation]
        if not drawn:
            _note(axis, missing)
            continue
        for (architecture, _, method), points in drawn:
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, marker="o", label=f"{architecture} {method}")
        axis.set_xlabel("sparsity")
        axis.set_ylabel(ylabel)
        if log:
            axis.set_yscale("log")
        axis.legend(fontsize=7)
    return figure


def _speedup_plot(rows: list[Any], accuracy_budget: float) -> Any | None:
    """Median speed-up against accuracy drop, one point per (setting, perturbation): the
    perturbation is the marker (legend), the setting the label; None when no point is known."""
    import matplotlib.pyplot as plt

    dense_accuracy = {(r.architecture, r.perturbation): r.accuracy_mean for r in rows if r.method == DENSE}
    points = []
    for row in rows:
        base = dense_accuracy.get((row.architecture, row.perturbation))
        if row.method == DENSE or base is None:
            continue
        drop, speedup = 100 * (base - row.accuracy_mean), row.median_speedup
        if not (math.isnan(drop) or math.isnan(speedup)):
            points.append((row, drop, speedup))
    if not points:
        return None
    architectures = {row.architecture for row, _, _ in points}
    perturbations = sorted({row.perturbation for row, _, _ in points})
    figure, axis = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    for index, perturbation in enumerate(perturbations):
        mine = [(row, drop, speedup) for row, drop, speedup in points if row.perturbation == perturbation]
        drops, speedups = [p[1] for p in mine], [p[2] for p in mine]
        axis.scatter(drops, speedups, s=24, marker=MARKERS[index % len(MARKERS)], label=perturbation)
        for row, drop, speedup in mine:
            name = f"{row.method} {row.sparsity:g}"
            label = f"{row.architecture} {name}" if len(architectures) > 1 else name
            axis.annotate(label, (drop, speedup), xytext=(4, 3), textcoords="offset points", fontsize=6)
    axis.axhline(1.0, color="gray", linewidth=0.8)
    axis.axvline(
        accuracy_budget,
        color="gray",
        linewidth=0.8,
        linestyle="--",
        label=f"accuracy budget ({accuracy_budget:g} points)",
    )
    axis.set_xlabel("accuracy drop against dense (points)")
    axis.set_ylabel("median speed-up against dense")
    axis.set_yscale("log")
    title = f"{next(iter(architectures))}: " if len(architectures) == 1 else ""
    axis.set_title(f"{title}speed-up against accuracy drop", fontsize=9)
    axis.legend(fontsize=7)
    return figure


def _examples_plot(records: list[dict[str, Any]]) -> Any | None:
    """Clean image, adversarial example and difference for the first attacks that found one; None
    when none did (images the model already misclassifies are no adversarial examples)."""
    import matplotlib.pyplot as plt

    examples = [
        r
        for r in records
        if r.get("kind") == "solve" and r.get("status") == "adversarial" and r.get("x_adv") is not None
    ][:MAX_EXAMPLES]
    if not examples:
        return None
    figure, axes = plt.subplots(
        len(examples), 3, figsize=(6, 2.1 * len(examples)), squeeze=False, layout="constrained"
    )
    for row, record in zip(axes, examples, strict=True):
        original, adversarial = np.asarray(record["x0"]), np.asarray(record["x_adv"])
        side = math.isqrt(original.size)
        shape = (side, side) if side * side == original.size else (1, original.size)
        difference = adversarial - original
        limit = float(np.max(np.abs(difference))) or 1.0
        size = np.sum(np.abs(difference)) if record.get("norm") == "l1" else np.max(np.abs(difference))
        norm = "1" if record.get("norm") == "l1" else "∞"
        row[0].imshow(original.reshape(shape), cmap="gray", vmin=0, vmax=1)
        row[1].imshow(adversarial.reshape(shape), cmap="gray", vmin=0, vmax=1)
        row[2].imshow(difference.reshape(shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        setting = f"{record['architecture']} {method_label(record)}"
        row[0].set_ylabel(f"{setting}\n{record['perturbation']}, image {record['image']}", fontsize=7)
        row[0].set_title(f"clean: label {record['label']}", fontsize=7)
        row[1].set_title(f"adversarial: class {record['target']} wins", fontsize=7)
        row[2].set_title(f"difference, ‖δ‖{norm} = {size:.3g}", fontsize=7)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    return figure


def write_figures(
    records: list[dict[str, Any]], rows: list[Any], folder: Path, accuracy_budget: float
) -> Figures:
    """Solve time and accuracy against sparsity, speed-up against accuracy drop, examples.

    Args:
        records: every record of the results file.
        rows: the summary rows (:class:`prunemip.study.report.SummaryRow`).
        folder: where the PNG and SVG files go.
        accuracy_budget: the accuracy drop (points) the speed-up plot marks.

    Returns:
        The files written, and the figures left out with the reason.
    """
    import matplotlib

    matplotlib.use("Agg")
    figures = Figures()
    unattacked = "no attacked image (each one misclassified)"
    figures.add(
        folder,
        "solve_time_vs_sparsity",
        _line_plot(rows, "sgm_seconds", "shifted geometric mean time (s)", True, unattacked),
        f"no pruned setting has a solve time: {unattacked}",
    )
    figures.add(
        folder,
        "accuracy_vs_sparsity",
        _line_plot(rows, "accuracy_mean", "test accuracy", False, "no model record"),
        "no pruned setting has a model record with its accuracy",
    )
    figures.add(
        folder,
        "speedup_vs_accuracy_drop",
        _speedup_plot(rows, accuracy_budget),
        "no pruned setting has a speed-up: no image was attacked on both it and the dense model",
    )
    figures.add(
        folder,
        "adversarial_examples",
        _examples_plot(records),
        "no attack found an adversarial example (clean images a model misclassifies are not shown)",
    )
    return figures
