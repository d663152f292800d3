"""The study's figures (matplotlib, PNG and SVG), drawn from the results records alone."""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from prunemip.atomic import atomic_write_bytes
from prunemip.study.jobs import DENSE, method_label

MAX_EXAMPLES = 6


def _save(figure: Any, folder: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for suffix in ("png", "svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix, dpi=120, bbox_inches="tight")
        paths.append(atomic_write_bytes(folder / f"{stem}.{suffix}", buffer.getvalue()))
    plt.close(figure)
    return paths


def _series(rows: list[Any], value: str) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """(architecture, perturbation, method) → [(sparsity, value)], each method joined to its dense point."""
    series: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    dense = {(r.architecture, r.perturbation): getattr(r, value) for r in rows if r.method == DENSE}
    for row in rows:
        if row.method != DENSE:
            key = (row.architecture, row.perturbation, row.method)
            if not series[key] and (row.architecture, row.perturbation) in dense:
                series[key].append((0.0, dense[(row.architecture, row.perturbation)]))
            series[key].append((row.sparsity, getattr(row, value)))
    return series


def _line_plot(rows: list[Any], value: str, ylabel: str, log: bool, folder: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    perturbations = sorted({r.perturbation for r in rows})
    figure, axes = plt.subplots(1, len(perturbations), figsize=(5.5 * len(perturbations), 4), squeeze=False)
    for axis, perturbation in zip(axes[0], perturbations, strict=True):
        for (architecture, pert, method), points in sorted(_series(rows, value).items()):
            if pert == perturbation:
                xs, ys = zip(*sorted(points), strict=True)
                axis.plot(xs, ys, marker="o", label=f"{architecture} {method}")
        axis.set_title(perturbation)
        axis.set_xlabel("sparsity")
        axis.set_ylabel(ylabel)
        if log:
            axis.set_yscale("log")
        axis.legend(fontsize=7)
    return _save(figure, folder, stem)


def _speedup_plot(rows: list[Any], folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    dense_accuracy = {(r.architecture, r.perturbation): r.accuracy_mean for r in rows if r.method == DENSE}
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for row in rows:
        base = dense_accuracy.get((row.architecture, row.perturbation))
        if row.method == DENSE or base is None or math.isnan(row.median_speedup):
            continue
        point = (100 * (base - row.accuracy_mean), row.median_speedup)
        axis.scatter(*point, s=18)
        axis.annotate(f"{row.architecture} {row.method} {row.sparsity:g}", point, fontsize=6)
    axis.axhline(1.0, color="gray", linewidth=0.8)
    axis.set_xlabel("accuracy drop against dense (points)")
    axis.set_ylabel("median speed-up against dense")
    axis.set_yscale("log")
    return _save(figure, folder, "speedup_vs_accuracy_drop")


def _examples_plot(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    examples = [r for r in records if r.get("kind") == "solve" and r.get("x_adv") is not None][:MAX_EXAMPLES]
    if not examples:
        return []
    figure, axes = plt.subplots(len(examples), 3, figsize=(6, 2 * len(examples)), squeeze=False)
    for row, record in zip(axes, examples, strict=True):
        original, adversarial = np.asarray(record["x0"]), np.asarray(record["x_adv"])
        side = math.isqrt(original.size)
        shape = (side, side) if side * side == original.size else (1, original.size)
        difference = adversarial - original
        limit = float(np.max(np.abs(difference))) or 1.0
        row[0].imshow(original.reshape(shape), cmap="gray", vmin=0, vmax=1)
        row[1].imshow(adversarial.reshape(shape), cmap="gray", vmin=0, vmax=1)
        row[2].imshow(difference.reshape(shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        row[0].set_ylabel(
            f"{record['architecture']} {method_label(record)}\n{record['perturbation']}", fontsize=7
        )
        row[1].set_title(f"label {record['label']} → target {record['target']}", fontsize=7)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    return _save(figure, folder, "adversarial_examples")


def write_figures(records: list[dict[str, Any]], rows: list[Any], folder: Path) -> list[Path]:
    """Solve time and accuracy against sparsity, speed-up against accuracy drop, examples."""
    import matplotlib

    matplotlib.use("Agg")
    return [
        *_line_plot(
            rows, "sgm_seconds", "shifted geometric mean time (s)", True, folder, "solve_time_vs_sparsity"
        ),
        *_line_plot(rows, "accuracy_mean", "test accuracy", False, folder, "accuracy_vs_sparsity"),
        *_speedup_plot(rows, folder),
        *_examples_plot(records, folder),
    ]
