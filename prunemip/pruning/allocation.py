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
"""

from __future__ import annotations

import math

import torch

from prunemip.errors import PrunemipError
from prunemip.pruning.masks import Masks


def erk_densities(shapes: list[tuple[int, int]], sparsity: float) -> list[float]:
    """ERK densities of weight matrices ``(n_out, n_in)``; Σ density·size = (1 − S)·Σ size."""
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
    """Per-layer densities of a non-global allocation."""
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


def top_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` highest scores (ties: lower position first)."""
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.argsort(scores, descending=True, stable=True)[:k]] = True
    return keep


def select(scores: list[torch.Tensor], masks: Masks, sparsity: float, allocation: str) -> Masks:
    """New masks keeping the highest ``scores`` of the prunable layers at ``sparsity``.

    ``scores`` has one tensor per linear layer (ignored for non-prunable layers). Only
    entries kept by ``masks`` compete (pruned ones stay pruned); a layer can never keep
    more than it has.
    """
    if not 0.0 <= sparsity < 1.0:
        raise PrunemipError(f"sparsity must lie in [0, 1), got {sparsity}")
    layers = [i for i, prunable in enumerate(masks.prunable) if prunable]
    flat = [
        torch.where(masks.weight[i].flatten(), scores[i].detach().flatten().double(), -math.inf)
        for i in layers
    ]
    active = [int(masks.weight[i].sum()) for i in layers]
    if allocation == "global":
        total = min(round((1.0 - sparsity) * sum(f.numel() for f in flat)), sum(active))
        kept = _split(top_mask(torch.cat(flat), total), flat)
        kept = _no_empty_layer(kept, flat)
    else:
        shapes = [tuple(masks.weight[i].shape) for i in layers]
        counts = keep_counts(allocation, shapes, sparsity)  # type: ignore[arg-type]
        kept = [top_mask(f, min(k, a)) for f, k, a in zip(flat, counts, active, strict=True)]
    result = masks.copy()
    for i, keep in zip(layers, kept, strict=True):
        result.weight[i] = keep.reshape(masks.weight[i].shape)
    return result


def _split(keep: torch.Tensor, parts: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.split(keep, [p.numel() for p in parts]))


def _no_empty_layer(kept: list[torch.Tensor], scores: list[torch.Tensor]) -> list[torch.Tensor]:
    """Give each empty layer its best entry in exchange for the weakest kept one elsewhere."""
    kept = [k.clone() for k in kept]
    for index, keep in enumerate(kept):
        if keep.any() or not torch.isfinite(scores[index]).any():
            continue
        donors = [i for i, k in enumerate(kept) if int(k.sum()) > 1]
        if donors:
            weakest = min(donors, key=lambda i: float(scores[i][kept[i]].min()))
            candidates = torch.where(kept[weakest], scores[weakest], math.inf)
            kept[weakest][int(torch.argmin(candidates))] = False
        keep[int(torch.argmax(scores[index]))] = True
    return kept
