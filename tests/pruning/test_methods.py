"""Pruning invariants (reference/pruning.md §9): the registry, masks, allocations, scores, IMP, GMP
and structured pruning; DST, regularisers and export have modules of their own."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from prunemip.errors import PrunemipError
from prunemip.pruning import METHODS, method_spec
from prunemip.pruning.allocation import erk_densities, keep_counts
from prunemip.pruning.config import PruneConfig
from prunemip.pruning.gmp import cubic_sparsity
from prunemip.pruning.imp import imp_densities, imp_masks, random_masks_like
from prunemip.pruning.masks import Masks, linear_layers, select
from prunemip.pruning.methods import RUNNERS
from prunemip.pruning.scores import SCORES, ScoreInputs, prune_by_scores, synflow_scores
from prunemip.pruning.structured import GroupLassoProximal, neuron_masks, neuron_norms, random_neuron_scores
from prunemip.pruning.training import build_mlp
from tests.conftest import assert_one_line

WIDTHS = (12, 10, 8, 4)


def mlp(widths=WIDTHS, seed=0, dtype=torch.float32) -> nn.Sequential:
    return build_mlp(widths[0], widths[1:-1], widths[-1], seed=seed).to(dtype)


def batch(n=16, n_in=WIDTHS[0], classes=WIDTHS[-1], seed=1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=generator), torch.arange(n) % classes


def prunable_size(masks: Masks) -> int:
    return masks.size()


# ----------------------------------------------------------------------- registry
def test_unknown_method_is_one_line_listing_the_names() -> None:
    with pytest.raises(PrunemipError) as error:
        method_spec("lottery")
    assert_one_line(error, "lottery", "rigl", "synflow", "imp")
    with pytest.raises(PrunemipError):
        PruneConfig(method="nope", sparsity=0.5)


def test_every_method_has_a_runner_and_every_pai_method_a_score() -> None:
    assert {spec.family for spec in METHODS.values()} <= set(RUNNERS)
    assert {name for name, spec in METHODS.items() if spec.family == "pai"} == set(SCORES)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, math.nan])
def test_sparsity_outside_unit_interval_is_refused(sparsity: float) -> None:
    with pytest.raises(PrunemipError) as error:
        PruneConfig(method="magnitude", sparsity=sparsity)
    assert_one_line(error, "sparsity")


# ----------------------------------------------------------------------- allocation
def test_magnitude_at_initialisation_ranks_each_layer_on_its_own() -> None:
    """Default init scales |w| by 1/√fan_in: a global ranking at 95 % would empty the 784-input
    layer (layer collapse); magnitude's default keeps 5 % of every prunable layer."""
    model = build_mlp(784, (100, 100), 10, seed=0)
    config = PruneConfig(method="magnitude", sparsity=0.95)
    masks = Masks.dense(model)
    collapsed = prune_by_scores("magnitude", model, masks, ScoreInputs(), 0.95, "global")
    assert int(collapsed.weight[0].sum()) <= 1  # what the default avoids
    pruned = prune_by_scores("magnitude", model, masks, ScoreInputs(), 0.95, config.resolved_allocation)
    assert [int(m.sum()) for m in pruned.weight[:-1]] == [3920, 500]
    trained = config.for_trained_model()  # trained weights share one scale: one global ranking
    assert trained.resolved_allocation == "global"
    chosen = PruneConfig(method="magnitude", sparsity=0.9, allocation="erk")
    assert chosen.for_trained_model().allocation == "erk"
    assert PruneConfig(method="snip", sparsity=0.9).for_trained_model().resolved_allocation == "global"


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.97])
def test_global_allocation_keeps_exactly_round_density_times_n(sparsity: float) -> None:
    model = mlp()
    masks = Masks.dense(model)
    scores = [torch.rand(m.shape, generator=torch.Generator().manual_seed(3)) for m in masks.weight]
    pruned = select(scores, masks, sparsity, "global")
    assert pruned.nnz() == round((1 - sparsity) * prunable_size(masks))
    assert bool(pruned.weight[-1].all())  # the output layer is not pruned unless asked
    assert all(bool(m.any()) for m in pruned.weight)


def test_output_layer_is_pruned_only_when_asked() -> None:
    model = mlp()
    masks = Masks.dense(model, prune_output=True)
    pruned = select([layer.weight.abs() for layer in linear_layers(model)], masks, 0.8, "global")
    assert pruned.nnz() == round(0.2 * sum(m.numel() for m in masks.weight))
    assert not bool(pruned.weight[-1].all())


@pytest.mark.parametrize("allocation", ["layer", "uniform", "erk"])
def test_layerwise_allocations_hit_their_per_layer_counts(allocation: str) -> None:
    model = mlp()
    masks = Masks.dense(model)
    scores = [torch.rand(m.shape) for m in masks.weight]
    pruned = select(scores, masks, 0.7, allocation)
    shapes = [tuple(m.shape) for m in masks.weight[:-1]]
    assert [int(m.sum()) for m in pruned.weight[:-1]] == keep_counts(allocation, shapes, 0.7)
    if allocation == "uniform":
        assert bool(pruned.weight[0].all())  # rigl: the first layer stays dense
    for mask, score in zip(pruned.weight[:-1], scores[:-1], strict=True):
        kept, dropped = score[mask], score[~mask]
        assert dropped.numel() == 0 or float(kept.min()) >= float(dropped.max())


@given(
    shapes=st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=5),
    sparsity=st.floats(0.0, 0.99),
)
def test_erk_densities_are_at_most_one_and_total_exact(shapes, sparsity) -> None:
    densities = erk_densities(shapes, sparsity)
    sizes = [a * b for a, b in shapes]
    assert all(0 < d <= 1 + 1e-12 for d in densities)
    assert math.isclose(
        sum(d * n for d, n in zip(densities, sizes, strict=True)), (1 - sparsity) * sum(sizes)
    )
    counts = keep_counts("erk", shapes, sparsity)
    assert all(1 <= c <= n for c, n in zip(counts, sizes, strict=True))
    if all(c > 1 for c in counts):  # the at-least-one floor can only add
        assert sum(counts) == round((1 - sparsity) * sum(sizes))


def test_erk_gives_small_layers_higher_density() -> None:
    small, large = erk_densities([(10, 100), (100, 784)], 0.9)
    assert small > large


def test_ties_are_broken_deterministically_by_position() -> None:
    masks = Masks.dense(mlp())
    scores = [torch.ones(m.shape) for m in masks.weight]
    first = select(scores, masks, 0.5, "layer")
    second = select(scores, masks, 0.5, "layer")
    assert all(torch.equal(a, b) for a, b in zip(first.weight, second.weight, strict=True))
    for mask in first.weight[:-1]:
        flat = mask.flatten()
        assert bool(flat[: int(flat.sum())].all())  # earlier positions win ties


def test_global_ranking_never_empties_a_layer_and_keeps_the_count() -> None:
    model = mlp()
    with torch.no_grad():
        linear_layers(model)[1].weight.mul_(1e-6)  # layer 2 would vanish under global magnitude
    masks = Masks.dense(model)
    pruned = select([layer.weight.abs() for layer in linear_layers(model)], masks, 0.9, "global")
    assert int(pruned.weight[1].sum()) == 1
    assert pruned.nnz() == round(0.1 * prunable_size(masks))


def test_collapsed_masks_are_refused() -> None:
    masks = Masks.dense(mlp())
    masks.weight[1] = torch.zeros_like(masks.weight[1])
    with pytest.raises(PrunemipError) as error:
        masks.check()
    assert_one_line(error, "collapse")
    masks = Masks.dense(mlp())
    masks.weight[0][:, 1:] = False
    masks.weight[0][1:, :] = False  # only neuron 0 of layer 1 is fed ...
    masks.weight[1][:, 0] = False  # ... and it feeds nothing
    assert masks.path_count() == 0
    with pytest.raises(PrunemipError):
        masks.check()


# ----------------------------------------------------------------------- scores
def test_snip_equals_gradient_times_weight_by_hand() -> None:
    model = mlp()
    images, labels = batch()
    scores = SCORES["snip"](model, Masks.dense(model), ScoreInputs(images, labels))
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    for layer, score in zip(linear_layers(model), scores, strict=True):
        torch.testing.assert_close(score, (layer.weight.grad * layer.weight).abs().detach())


def test_synflow_scores_are_invariant_to_positive_rescaling() -> None:
    model = mlp(dtype=torch.float64)
    masks = Masks.dense(model)
    base = synflow_scores(model, masks, ScoreInputs())
    layers = linear_layers(model)
    with torch.no_grad():
        layers[0].weight.mul_(3.7)
        layers[1].weight.div_(3.7)
    for a, b in zip(base, synflow_scores(model, masks, ScoreInputs()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    with torch.no_grad():
        layers[2].weight.mul_(5.0)  # one layer alone: every score scales by 5, the mask does not change
    for a, b in zip(base, synflow_scores(model, masks, ScoreInputs()), strict=True):
        torch.testing.assert_close(5.0 * a, b, rtol=1e-12, atol=0)


def test_synflow_is_iterative_and_exact() -> None:
    model = mlp()
    masks = prune_by_scores("synflow", model, Masks.dense(model), ScoreInputs(), 0.9, "global", 100)
    assert masks.nnz() == round(0.1 * masks.size())
    assert masks.path_count() > 0


def test_grasp_removes_the_largest_minus_theta_hg() -> None:
    torch.manual_seed(0)
    model = mlp(dtype=torch.float64)
    images, labels = batch(n=16)
    images = images.double()
    t = 200.0
    layers = linear_layers(model)
    sizes = [layer.weight.numel() for layer in layers]

    def half_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (w, layer) in enumerate(zip(torch.split(flat, sizes), layers, strict=True)):
            h = h @ w.reshape(layer.weight.shape).T + layer.bias.detach()
            h = torch.relu(h) if i < len(layers) - 1 else h
        return nn.functional.cross_entropy(h / t, y)

    halves = [(images[:8], labels[:8]), (images[8:], labels[8:])]
    flat = torch.cat([layer.weight.detach().flatten() for layer in layers])
    g = sum(
        torch.autograd.functional.jacobian(lambda f, x=x, y=y: half_loss(f, x, y), flat) for x, y in halves
    )
    hg = sum(
        torch.autograd.functional.hvp(lambda f, x=x, y=y: half_loss(f, x, y), flat, g)[1] for x, y in halves
    )
    s = -flat * hg
    inputs = ScoreInputs(images, labels, temperature=t)
    masks = prune_by_scores("grasp", model, Masks.dense(model), inputs, 0.6, "global")
    n_prunable = sum(sizes[:-1])
    removed = ~torch.cat([m.flatten() for m in masks.weight[:-1]])
    assert int(removed.sum()) == n_prunable - round(0.4 * n_prunable)
    prunable_s = s[:n_prunable]
    assert float(prunable_s[removed].min()) >= float(prunable_s[~removed].max())  # the largest S go
    assert float(prunable_s[removed].max()) > 0 > float(prunable_s[~removed].min())  # signed, no abs


# ----------------------------------------------------------------------- IMP
def test_imp_densities_follow_point_eight_to_the_r() -> None:
    densities = imp_densities(0.9, 0.2)
    assert len(densities) == 11
    for r, density in enumerate(densities[:-1], 1):
        assert math.isclose(density, 0.8**r)
    assert densities[-1] == pytest.approx(0.1)
    rounds = imp_densities(0.875, rounds=3)
    assert rounds == pytest.approx([0.5, 0.25, 0.125])
    assert imp_densities(0.0) == []


def test_imp_masks_prune_twenty_percent_of_the_remaining_by_global_magnitude() -> None:
    model = mlp()
    masks = Masks.dense(model)
    n = masks.size()
    for r, density in enumerate(imp_densities(1 - 0.8**4, 0.2), 1):
        masks = imp_masks(model, masks, density)
        assert masks.nnz() == round(0.8**r * n)
    weights = torch.cat([layer.weight.detach().abs().flatten() for layer in linear_layers(model)[:-1]])
    kept = torch.cat([m.flatten() for m in masks.weight[:-1]])
    assert float(weights[kept].min()) >= float(weights[~kept].max())


def test_random_mask_control_keeps_per_layer_counts() -> None:
    model = mlp()
    masks = imp_masks(model, Masks.dense(model), 0.3)
    control = random_masks_like(masks, seed=5)
    assert [int(m.sum()) for m in control.weight] == [int(m.sum()) for m in masks.weight]
    assert not torch.equal(control.weight[0], masks.weight[0])


# ----------------------------------------------------------------------- GMP
def test_cubic_schedule() -> None:
    assert cubic_sparsity(0, 0.9, 10, 110) == 0.0
    assert cubic_sparsity(10, 0.9, 10, 110) == 0.0
    assert cubic_sparsity(60, 0.9, 10, 110) == pytest.approx(0.9 * (1 - 0.5**3))
    assert cubic_sparsity(110, 0.9, 10, 110) == pytest.approx(0.9)
    assert cubic_sparsity(500, 0.9, 10, 110) == pytest.approx(0.9)


# ----------------------------------------------------------------------- structured
def test_neuron_pruning_masks_rows_biases_and_outgoing_columns() -> None:
    model = mlp((12, 20, 16, 4))
    masks = neuron_masks(Masks.dense(model), neuron_norms(model), 0.6)
    assert masks.sparsity >= 0.6
    for index in range(2):
        dead = ~masks.bias[index]
        assert bool(dead.any())
        assert not bool(masks.weight[index][dead].any())
        assert not bool(masks.weight[index + 1][:, dead].any())
        norms = neuron_norms(model)[index]
        assert float(norms[~dead].min()) >= float(norms[dead].max())


def test_random_neuron_control_removes_as_many_neurons_per_layer_as_the_norms_do() -> None:
    model = mlp((12, 20, 16, 4))
    by_norm = neuron_masks(Masks.dense(model), neuron_norms(model), 0.6)
    by_chance = [
        neuron_masks(Masks.dense(model), random_neuron_scores(model, seed), 0.6) for seed in (0, 0, 1)
    ]
    for masks in by_chance:
        assert [int(b.sum()) for b in masks.bias[:2]] == [int(b.sum()) for b in by_norm.bias[:2]]
        assert masks.nnz() == by_norm.nnz()
    assert all(torch.equal(a, b) for a, b in zip(by_chance[0].bias, by_chance[1].bias, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(by_chance[0].bias, by_chance[2].bias, strict=True))


def test_neuron_pruning_refuses_an_unreachable_sparsity() -> None:
    model = mlp((12, 3, 4))
    with pytest.raises(PrunemipError) as error:
        neuron_masks(Masks.dense(model), neuron_norms(model), 0.99)
    assert_one_line(error, "neuron pruning")


def test_group_lasso_proximal_step_reaches_exact_zeros() -> None:
    model = mlp()
    norms = neuron_norms(model, with_bias=True)
    threshold = float(torch.cat(norms).median())
    GroupLassoProximal(strength=threshold).after_step(0, model, Masks.dense(model), None, lr=1.0)
    for before, after in zip(norms, neuron_norms(model, with_bias=True), strict=True):
        assert bool((after[before <= threshold] == 0).all())
        torch.testing.assert_close(after[before > threshold], before[before > threshold] - threshold)
