"""How many weights each layer keeps, and which: global, layer-wise, uniform and ERK.

* ``global`` — one ranking over all prunable weights keeps the top ``round((1 − S)·N)``
  (Synaptic-Flow's global scope; open_lth's sparse_global).
* ``layer`` — every prunable layer keeps ``round((1 − S)·n_l)`` of its own top scores
  (Synaptic-Flow's local scope).
* ``uniform`` — rigl's uniform distribution: the first prunable layer stays dense, every
  other one is at sparsity S (so the total sparsity is below S; a single prunable layer
  is pruned to S).
* ``erk`` — Erdős–Rényi(-Kernel) of Evci et al. 2020 (rigl ``get_sparsities_erdos_renyi``):
  density_l = ε·(n_in + n_out)/(n_in·n_out), ε solved so that the kept total is
  ``(1 − S)·N``; a layer whose density would exceed 1 is made dense and ε re-solved.

Counts are exact integers (largest-remainder rounding for ERK's total); ranking ties
are broken by position (stable sort), so masks are deterministic. A global ranking
never leaves a prunable layer empty: its best entry is swapped in for the weakest kept
entry of another layer.

Torch-free: scores are numpy arrays. "Keep the highest scores" is defined here once
(:func:`keep_highest`, :func:`top_k`) for the training path, which ranks its torch scores
through it (:func:`prunemip.pruning.masks.select`), and for the data-free magnitude
pruning of an exported network (:mod:`prunemip.pruning.sparsify`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prunemip.errors import PrunemipError


def erk_densities(shapes: list[tuple[int, int]], sparsity: float) -> list[float]:
    """ERK densities of weight matrices ``(n_out, n_in)``; Σ density·size = (1 − S)·Σ size.

    Args:
        shapes: each prunable layer's weight shape ``(n_out, n_in)``.
        sparsity: the target sparsity S over all of them, in [0, 1).

    Returns:
        One density in (0, 1] per layer (1 for the layers made dense).
    """
    sizes = [n_out * n_in for n_out, n_in in shapes]
    raw = [(n_out + n_in) / (n_out * n_in) for n_out, n_in in shapes]
    target = (1.0 - sparsity) * sum(sizes)
    dense: set[int] = set()
    while True:
        free = [i for i in range(len(shapes)) if i not in dense]
        if not free:
            return [1.0] * len(shapes)
        epsilon = (target - sum(sizes[i] for i in dense)) / sum(raw[i] * sizes[i] for i in free)
        too_dense = [i for i in free if epsilon * raw[i] > 1.0]
        if not too_dense:
            return [1.0 if i in dense else epsilon * raw[i] for i in range(len(shapes))]
        dense.add(max(too_dense, key=lambda i: raw[i]))


def layer_densities(allocation: str, shapes: list[tuple[int, int]], sparsity: float) -> list[float]:
    """Per-layer densities of a non-global allocation.

    Args:
        allocation: ``layer``, ``uniform`` or ``erk``.
        shapes: each prunable layer's weight shape ``(n_out, n_in)``.
        sparsity: the target sparsity, in [0, 1).

    Returns:
        One density per layer.

    Raises:
        PrunemipError: for ``global`` or an unknown allocation.
    """
    if allocation == "erk":
        return erk_densities(shapes, sparsity)
    if allocation == "layer" or (allocation == "uniform" and len(shapes) == 1):
        return [1.0 - sparsity] * len(shapes)
    if allocation == "uniform":
        return [1.0] + [1.0 - sparsity] * (len(shapes) - 1)
    raise PrunemipError(f"allocation {allocation!r} has no per-layer densities")


def keep_counts(allocation: str, shapes: list[tuple[int, int]], sparsity: float) -> list[int]:
    """Exact kept-weight counts per layer (each at least 1).

    ERK's counts add up to ``round((1 − S)·N)`` (largest remainder); the others round
    each layer on its own.

    Args:
        allocation: ``layer``, ``uniform`` or ``erk``.
        shapes: each prunable layer's weight shape ``(n_out, n_in)``.
        sparsity: the target sparsity, in [0, 1).

    Returns:
        One count per layer, between 1 and the layer's size.

    Raises:
        PrunemipError: for ``global`` or an unknown allocation.
    """
    densities = layer_densities(allocation, shapes, sparsity)
    sizes = [n_out * n_in for n_out, n_in in shapes]
    if allocation != "erk":
        return [max(1, round(d * n)) for d, n in zip(densities, sizes, strict=True)]
    quotas = [d * n for d, n in zip(densities, sizes, strict=True)]
    counts = [math.floor(q) for q in quotas]
    extra = round((1.0 - sparsity) * sum(sizes)) - sum(counts)
    for index in sorted(range(len(quotas)), key=lambda i: counts[i] - quotas[i])[: max(extra, 0)]:
        counts[index] += 1
    return [min(max(1, c), n) for c, n in zip(counts, sizes, strict=True)]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest scores.

    Args:
        scores: an array of scores (any shape; −inf ranks last).
        k: how many entries to keep.

    Returns:
        A boolean array shaped like ``scores``, ``True`` at the ``k`` highest entries; ties
        go to the lower position in C order (stable sort).
    """
    flat = np.asarray(scores).ravel()
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.argsort(-flat, kind="stable")[:k]] = True
    return keep.reshape(np.shape(scores))


def keep_highest(scores: Sequence[np.ndarray], sparsity: float, allocation: str) -> list[np.ndarray]:
    """The entries of each prunable layer that survive pruning to ``sparsity``: the highest scores.

    Args:
        scores: one array per prunable layer. An entry scored −inf does not compete (it is
            already pruned and stays so); a layer can never keep more entries than compete.
            Non-global allocations read each layer's ``(n_out, n_in)`` from its array's shape.
        sparsity: the fraction of all entries (competing or not) to remove, in [0, 1).
        allocation: ``global``, ``layer``, ``uniform`` or ``erk`` (see the module docstring).

    Returns:
        One boolean array per layer, shaped like its scores, ``True`` where the entry is kept.

    Raises:
        PrunemipError: if ``sparsity`` is outside [0, 1).
    """
    if not 0.0 <= sparsity < 1.0:
        raise PrunemipError(f"sparsity must lie in [0, 1), got {sparsity}")
    flat = [np.asarray(s, dtype=np.float64).ravel() for s in scores]
    active = [int(np.count_nonzero(f != -np.inf)) for f in flat]
    if allocation == "global":
        total = min(round((1.0 - sparsity) * sum(f.size for f in flat)), sum(active))
        ranked = top_k(np.concatenate(flat), total)
        kept = _no_empty_layer(np.split(ranked, np.cumsum([f.size for f in flat])[:-1]), flat)
    else:
        counts = keep_counts(allocation, [np.shape(s) for s in scores], sparsity)
        kept = [top_k(f, min(k, a)) for f, k, a in zip(flat, counts, active, strict=True)]
    return [keep.reshape(np.shape(s)) for keep, s in zip(kept, scores, strict=True)]


def _no_empty_layer(kept: list[np.ndarray], scores: list[np.ndarray]) -> list[np.ndarray]:
    """Give each empty layer its best entry in exchange for the weakest kept one elsewhere."""
    kept = [k.copy() for k in kept]
    for index, keep in enumerate(kept):
        if keep.any() or not np.isfinite(scores[index]).any():
            continue
        donors = [i for i, k in enumerate(kept) if int(k.sum()) > 1]
        if donors:
            weakest = min(donors, key=lambda i: float(scores[i][kept[i]].min()))
            candidates = np.where(kept[weakest], scores[weakest], math.inf)
            kept[weakest][int(np.argmin(candidates))] = False
        keep[int(np.argmax(scores[index]))] = True
    return kept
