"""Pruning-at-initialisation scores: random, magnitude, SNIP, GraSP, SynFlow.

Every score function returns one tensor per linear layer; *higher means keep*.
:func:`prune_by_scores` turns them into masks with an allocation
(:mod:`prunemip.pruning.allocation`): one shot for every method except SynFlow, which
rescores on the pruned network ``iterations`` times along the exponential schedule
density_k = ρ₀·(ρ/ρ₀)^{k/n} (Tanaka et al. 2020; Synaptic-Flow ``prune_loop``).

* random — U(0, 1) from the run's seed.
* magnitude — |w|.
* SNIP (Lee et al., ICLR 2019) — |∂L/∂c ⊙ 1| = |g ⊙ w| for the cross-entropy of one
  stratified mini-batch (``score_per_class`` images per class). snip-public's
  normalisation by Σ|g ⊙ w| is a positive constant and does not change the ranking.
* GraSP (Wang et al., ICLR 2020) — S = −θ ⊙ Hg with the logits divided by the
  temperature T (default 200), g and Hg summed over the two halves of the batch as in
  the reference code; the entries with the *largest* S are removed (signed, never abs),
  so the keep score is −S. The reference's optional xavier re-initialisation of the
  scoring copy is not done: the scores are computed on the network's own weights.
* SynFlow (Tanaka et al., NeurIPS 2020) — data-free: R = 1ᵀ(Π_l |W_l ⊙ M_l|)1, the
  network fed an all-ones input with every weight replaced by its absolute value, in
  float64; score = |θ ⊙ ∂R/∂θ|. Biases are left out, as in the paper's R (the reference
  code keeps |b|), which makes the scores conserved under positive rescaling of a layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunemip.data import Dataset
from prunemip.pruning.masks import Masks, linear_layers, select


@dataclass(frozen=True)
class ScoreInputs:
    """What a score may use: a labelled mini-batch (SNIP, GraSP), a seed, GraSP's temperature."""

    images: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    seed: int = 0
    temperature: float = 200.0


ScoreFunction = Callable[[nn.Module, Masks, ScoreInputs], list[torch.Tensor]]


def score_batch(
    data: Dataset, per_class: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A stratified mini-batch: ``per_class`` images of each class, drawn with ``seed``.

    Args:
        data: the dataset drawn from.
        per_class: images per class (fewer where a class has fewer).
        seed: the seed of the draw.
        device: where the tensors go.

    Returns:
        ``(images, labels)``: float32 rows ``(n, n_inputs)`` and their labels.
    """
    rng = np.random.default_rng([seed, 2])
    rows = np.concatenate(
        [rng.permutation(np.flatnonzero(data.labels == c))[:per_class] for c in np.unique(data.labels)]
    )
    images = torch.as_tensor(data.flat()[rows], dtype=torch.float32, device=device)
    return images, torch.as_tensor(data.labels[rows], device=device)


def random_scores(model: nn.Module, masks: Masks, inputs: ScoreInputs) -> list[torch.Tensor]:
    """U(0, 1) scores drawn on the CPU from ``inputs.seed`` (the same masks on any device).

    Args:
        model: the MLP.
        masks: not used.
        inputs: gives the seed.

    Returns:
        One tensor per linear layer, shaped like its weight.
    """
    generator = torch.Generator().manual_seed(inputs.seed)  # CPU draws: the same mask on any device
    return [
        torch.rand(layer.weight.shape, generator=generator).to(layer.weight.device)
        for layer in linear_layers(model)
    ]


def magnitudes(model: nn.Module) -> list[torch.Tensor]:
    """|w| of every linear layer.

    Args:
        model: the MLP.

    Returns:
        One tensor per linear layer, shaped like its weight.
    """
    return [layer.weight.detach().abs() for layer in linear_layers(model)]


def magnitude_scores(model: nn.Module, masks: Masks, inputs: ScoreInputs) -> list[torch.Tensor]:
    """:func:`magnitudes` as a :data:`ScoreFunction`.

    Args:
        model: the MLP.
        masks: not used.
        inputs: not used.

    Returns:
        One tensor per linear layer, shaped like its weight.
    """
    return magnitudes(model)


def _loss_gradients(
    model: nn.Module,
    images: torch.Tensor | None,
    labels: torch.Tensor | None,
    temperature: float = 1.0,
    graph: bool = False,
) -> tuple[torch.Tensor, ...]:
    if images is None or labels is None:
        raise ValueError("this score needs a labelled mini-batch")
    weights = [layer.weight for layer in linear_layers(model)]
    loss = nn.functional.cross_entropy(model(images) / temperature, labels)
    return torch.autograd.grad(loss, weights, create_graph=graph)


def snip_scores(model: nn.Module, masks: Masks, inputs: ScoreInputs) -> list[torch.Tensor]:
    """SNIP's |g ⊙ w| for the cross-entropy of the labelled mini-batch.

    Args:
        model: the MLP.
        masks: not used.
        inputs: gives the labelled mini-batch.

    Returns:
        One tensor per linear layer, shaped like its weight.

    Raises:
        ValueError: without a labelled mini-batch.
    """
    gradients = _loss_gradients(model, inputs.images, inputs.labels)
    return [
        (g * layer.weight).detach().abs() for g, layer in zip(gradients, linear_layers(model), strict=True)
    ]


def grasp_scores(model: nn.Module, masks: Masks, inputs: ScoreInputs) -> list[torch.Tensor]:
    """Keep score θ ⊙ Hg (= −S): the largest S = −θ ⊙ Hg are the ones removed.

    Args:
        model: the MLP.
        masks: not used.
        inputs: gives the labelled mini-batch and the temperature T.

    Returns:
        One tensor per linear layer, shaped like its weight (signed).

    Raises:
        ValueError: without a labelled mini-batch.
    """
    weights = [layer.weight for layer in linear_layers(model)]
    if inputs.images is None or inputs.labels is None:
        raise ValueError("GraSP needs a labelled mini-batch")
    half = max(1, len(inputs.labels) // 2)
    halves = [(inputs.images[:half], inputs.labels[:half]), (inputs.images[half:], inputs.labels[half:])]
    halves = [(x, y) for x, y in halves if len(y)]
    g = [torch.zeros_like(w) for w in weights]
    for images, labels in halves:
        for total, grad in zip(g, _loss_gradients(model, images, labels, inputs.temperature), strict=True):
            total += grad
    hg = [torch.zeros_like(w) for w in weights]
    for images, labels in halves:
        grads = _loss_gradients(model, images, labels, inputs.temperature, graph=True)
        z = sum((grad * fixed).sum() for grad, fixed in zip(grads, g, strict=True))
        for total, part in zip(hg, torch.autograd.grad(z, weights), strict=True):
            total += part
    return [(w * h).detach() for w, h in zip(weights, hg, strict=True)]


def synflow_scores(model: nn.Module, masks: Masks, inputs: ScoreInputs) -> list[torch.Tensor]:
    """SynFlow's |θ ⊙ ∂R/∂θ| of the masked network, in float64 (data-free).

    Args:
        model: the MLP.
        masks: the masks in force (pruned weights score 0).
        inputs: not used.

    Returns:
        One float64 tensor per linear layer, shaped like its weight.
    """
    device = masks.weight[0].device
    weights = [
        (layer.weight.detach().double().abs() * mask).requires_grad_()
        for layer, mask in zip(linear_layers(model), masks.weight, strict=True)
    ]
    signal = torch.ones(1, weights[0].shape[1], dtype=torch.float64, device=device)
    for weight in weights:
        signal = torch.relu(signal @ weight.T)
    gradients = torch.autograd.grad(signal.sum(), weights)
    return [(w * g).detach().abs() for w, g in zip(weights, gradients, strict=True)]


SCORES: dict[str, ScoreFunction] = {
    "random": random_scores,
    "magnitude": magnitude_scores,
    "snip": snip_scores,
    "grasp": grasp_scores,
    "synflow": synflow_scores,
}


def prune_by_scores(
    method: str,
    model: nn.Module,
    masks: Masks,
    inputs: ScoreInputs,
    sparsity: float,
    allocation: str,
    iterations: int = 1,
) -> Masks:
    """Masks at ``sparsity`` from ``method``'s scores, rescored ``iterations`` times.

    The density goes from the current ρ₀ to ρ = 1 − ``sparsity`` geometrically; the
    model's weights are not changed (they already hold zeros at pruned entries only
    where ``masks`` says so).

    Args:
        method: a key of :data:`SCORES`.
        model: the model scored.
        masks: the masks in force (what they prune stays pruned).
        inputs: the scoring batch, seed and GraSP temperature.
        sparsity: the target fraction of pruned prunable weights, in [0, 1).
        allocation: ``global``, ``layer``, ``uniform`` or ``erk``.
        iterations: scoring rounds (SynFlow's schedule; 1 for one shot).

    Returns:
        The new masks.

    Raises:
        PrunemipError: if the masks collapse a layer (:meth:`Masks.check`).
    """
    start = 1.0 - masks.sparsity
    target = 1.0 - sparsity
    for k in range(1, iterations + 1):
        density = target if k == iterations else start * (target / start) ** (k / iterations)
        masks = select(SCORES[method](model, masks, inputs), masks, 1.0 - density, allocation)
    masks.check()
    return masks
