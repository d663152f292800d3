"""``prunemip.pruning.masks``: the masks are the single source of truth for zero, frozen and
trainable entries, through optimizer steps, mask changes, copies and checkpoints."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec
from prunemip.pruning.allocation import keep_highest
from prunemip.pruning.config import TrainConfig
from prunemip.pruning.export import export_network
from prunemip.pruning.masks import Masks, linear_layers, select, top_mask, zero_optimizer_state
from prunemip.pruning.scores import magnitudes
from prunemip.pruning.sparsify import magnitude_prune
from prunemip.pruning.training import apply_weight_decay, build_mlp, make_optimizer
from tests.conftest import assert_one_line

WIDTHS = (6, 5, 4, 3)


def mlp(seed: int = 0) -> nn.Sequential:
    return build_mlp(WIDTHS[0], WIDTHS[1:-1], WIDTHS[-1], seed=seed)


def random_masks(model: nn.Module, keep: float = 0.5, freeze: float = 0.0, seed: int = 0) -> Masks:
    """Masks keeping about ``keep`` of the prunable weights, freezing about ``freeze`` of the kept ones."""
    generator = torch.Generator().manual_seed(seed)
    masks = Masks.dense(model)
    for index, prunable in enumerate(masks.prunable):
        shape = masks.weight[index].shape
        if prunable:
            masks.weight[index] = torch.rand(shape, generator=generator) < keep
            masks.weight[index].view(-1)[0] = True  # no layer collapses
        masks.frozen[index] = masks.weight[index] & (torch.rand(shape, generator=generator) < freeze)
    masks.bias[0][0] = False
    masks.frozen_bias[1][0] = True
    return masks


def one_step(model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
    """One step of the training loop's mask enforcement (prunemip.pruning.training.train)."""
    images = torch.rand(8, WIDTHS[0])
    loss = nn.functional.cross_entropy(model(images), torch.arange(8) % WIDTHS[-1])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    masks.mask_gradients(model)
    apply_weight_decay(model, masks, config, config.lr)
    optimizer.step()
    masks.apply(model)


# ----------------------------------------------------------------------- construction and shapes
def test_dense_masks_keep_everything_and_leave_the_output_layer_alone_unless_asked() -> None:
    model = mlp()
    masks = Masks.dense(model)
    assert masks.prunable == (True, True, False)
    assert [tuple(m.shape) for m in masks.weight] == [(5, 6), (4, 5), (3, 4)]
    assert [tuple(m.shape) for m in masks.bias] == [(5,), (4,), (3,)]
    assert all(bool(m.all()) for m in [*masks.weight, *masks.bias])
    assert not any(bool(m.any()) for m in [*masks.frozen, *masks.frozen_bias])
    assert Masks.dense(model, prune_output=True).prunable == (True, True, True)
    assert masks.sparsity == 0.0 and masks.size() == 5 * 6 + 4 * 5 and masks.size(False) == masks.size() + 12


def test_a_model_without_hidden_layer_has_nothing_to_prune() -> None:
    with pytest.raises(PrunemipError) as error:
        Masks.dense(nn.Sequential(nn.Linear(4, 2)))
    assert_one_line(error, "no hidden layer")
    assert Masks.dense(nn.Sequential(nn.Linear(4, 2)), prune_output=True).prunable == (True,)


def test_masks_from_nonzeros_keep_a_sparse_models_zeros_pruned() -> None:
    model = mlp()
    with torch.no_grad():
        model[1].weight[0, :3] = 0.0
    masks = Masks.from_nonzeros(model)
    assert torch.equal(masks.weight[0], model[1].weight != 0)
    assert masks.nnz() == masks.size() - 3


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m.bias.pop(), "one weight, bias"),
        (lambda m: setattr(m, "prunable", (True,)), "one weight, bias"),
        (lambda m: m.bias.__setitem__(1, torch.ones(7, dtype=torch.bool)), "layer 2"),
        (lambda m: m.frozen.__setitem__(0, torch.zeros(6, 5, dtype=torch.bool)), "layer 1"),
        (lambda m: m.weight.__setitem__(2, torch.ones(3, 5, dtype=torch.bool)), "layer 3"),
        (lambda m: m.weight.__setitem__(0, torch.ones(30, dtype=torch.bool)), "layer 1"),
    ],
)
def test_masks_whose_shapes_do_not_chain_like_an_mlp_are_refused(change, fragment) -> None:
    state = Masks.dense(mlp()).state()
    masks = Masks.from_state(state)
    change(masks)
    with pytest.raises(PrunemipError) as error:
        Masks(masks.weight, masks.bias, masks.prunable, masks.frozen, masks.frozen_bias)
    assert_one_line(error, fragment)


def test_masks_refuse_a_model_of_another_architecture() -> None:
    masks = Masks.dense(mlp())
    other = build_mlp(6, (5, 5), 3)
    for use in (masks.apply, masks.mask_gradients, lambda model: list(masks.trainable_pairs(model))):
        with pytest.raises(PrunemipError) as error:
            use(other)
        assert_one_line(error, "(4, 5)", "(5, 5)")
    with pytest.raises(PrunemipError) as error:
        masks.set_weight(0, torch.ones(6, 5, dtype=torch.bool), mlp(), None)
    assert_one_line(error, "(6, 5)", "(5, 6)")


# ----------------------------------------------------------------------- enforcement through training
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_pruned_entries_stay_zero_and_frozen_ones_untouched_through_momentum_and_decay(optimizer) -> None:
    torch.manual_seed(0)
    model = mlp()
    masks = random_masks(model, keep=0.5, freeze=0.3)
    masks.apply(model)
    initial = [parameter.detach().clone() for parameter, _ in masks.pairs(model)]
    config = TrainConfig(optimizer=optimizer, lr=0.05, momentum=0.9, weight_decay=0.1)
    opt = make_optimizer(model, config)
    for _ in range(5):
        one_step(model, masks, opt, config)
    pairs = zip(masks.pairs(model), masks.trainable_pairs(model), initial, strict=True)
    moved = False
    for (parameter, kept), (_, trainable), start in pairs:
        assert bool((parameter[~kept] == 0).all())  # exactly zero, not small
        untrained = ~trainable
        assert torch.equal(parameter[untrained], start[untrained])  # frozen: bit-identical
        for value in opt.state[parameter].values():
            if value.shape == parameter.shape:  # momentum, Adam's moments
                assert bool((value[untrained] == 0).all())
        moved |= not torch.equal(parameter[trainable], start[trainable])
    assert moved


def test_a_mask_change_zeroes_the_changed_entries_and_their_optimizer_state() -> None:
    torch.manual_seed(1)
    model = mlp()
    masks = random_masks(model, keep=0.6)
    config = TrainConfig(optimizer="adam", lr=0.01)
    opt = make_optimizer(model, config)
    for _ in range(3):
        one_step(model, masks, opt, config)
    layer = linear_layers(model)[0]
    old = masks.weight[0].clone()
    new = old.clone()
    dropped = torch.nonzero(opt.state[layer.weight]["exp_avg"] != 0)[0].tolist()  # kept, with momentum
    grown = torch.nonzero(~old)[0].tolist()
    new[tuple(dropped)], new[tuple(grown)] = False, True
    before = layer.weight.detach().clone()
    state_before = {key: value.clone() for key, value in opt.state[layer.weight].items()}
    masks.set_weight(0, new, model, opt)
    changed = new != old
    assert torch.equal(masks.weight[0], new) and masks.weight[0] is not new
    assert bool((layer.weight[changed] == 0).all())
    assert torch.equal(layer.weight[~changed], before[~changed])
    for key, value in opt.state[layer.weight].items():
        if value.shape == layer.weight.shape:
            assert bool((value[changed] == 0).all())
            assert torch.equal(value[~changed], state_before[key][~changed])
        else:
            assert torch.equal(value, state_before[key])  # Adam's step count is not per entry


def test_zero_optimizer_state_touches_only_per_entry_buffers() -> None:
    parameter = nn.Parameter(torch.ones(3, 2))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    parameter.grad = torch.ones(3, 2)
    optimizer.step()
    where = torch.zeros(3, 2, dtype=torch.bool)
    where[1] = True
    zero_optimizer_state(optimizer, parameter, where)
    buffer = optimizer.state[parameter]["momentum_buffer"]
    assert bool((buffer[1] == 0).all()) and bool((buffer[[0, 2]] == 1).all())
    zero_optimizer_state(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), parameter, where)  # no state


# ----------------------------------------------------------------------- checks and accounting
def test_collapse_checks_raise() -> None:
    model = mlp()
    masks = Masks.dense(model)
    masks.check()
    empty = masks.copy()
    empty.weight[1][:] = False
    with pytest.raises(PrunemipError) as error:
        empty.check()
    assert_one_line(error, "layer 2", "layer collapse")
    disconnected = masks.copy()
    disconnected.weight[0][1:] = False  # only hidden neuron 0 of layer 1 has inputs ...
    disconnected.weight[1][:, 0] = False  # ... and no neuron of layer 2 reads it
    assert disconnected.path_count() == 0
    with pytest.raises(PrunemipError) as error:
        disconnected.check()
    assert_one_line(error, "no input→output path")
    pruned_and_frozen = masks.copy()
    pruned_and_frozen.frozen[0][0, 0] = True
    pruned_and_frozen.weight[0][0, 0] = False
    with pytest.raises(PrunemipError) as error:
        pruned_and_frozen.check()
    assert_one_line(error, "both pruned and frozen")


@given(st.integers(0, 2**16), st.floats(0.2, 0.9))
@settings(max_examples=20, deadline=None)
def test_path_count_is_the_number_of_input_output_paths(seed, keep) -> None:
    masks = random_masks(mlp(), keep=keep, seed=seed)
    masks.weight[2] = torch.rand(3, 4, generator=torch.Generator().manual_seed(seed)) < keep
    adjacency = [m.numpy() for m in masks.weight]
    brute = sum(
        all(adjacency[layer][path[layer + 1], path[layer]] for layer in range(3))
        for path in itertools.product(*(range(width) for width in WIDTHS))
    )
    assert masks.path_count() == brute


def test_parameter_counts_split_every_parameter_once() -> None:
    model = mlp()
    masks = random_masks(model, keep=0.5, freeze=0.4)
    counts = masks.parameter_counts()
    for count, weight, bias, frozen in zip(counts, masks.weight, masks.bias, masks.frozen, strict=True):
        assert count["trainable"] + count["frozen"] + count["zero"] == weight.numel() + bias.numel()
        assert count["weights_untrained"] == int((~weight).sum()) + int(frozen.sum())
    assert sum(c["zero"] for c in counts) == sum(int((~m).sum()) for m in [*masks.weight, *masks.bias])
    assert masks.nnz() == sum(int(m.sum()) for m in masks.weight[:2])
    assert masks.sparsity == pytest.approx(1 - masks.nnz() / masks.size())


# ----------------------------------------------------------------------- copies and checkpoints
def test_copies_are_independent_and_move_to_changes_the_object_in_place() -> None:
    masks = random_masks(mlp(), freeze=0.5)
    copy = masks.copy()
    copy.weight[0][:] = False
    copy.frozen[0][:] = False
    assert bool(masks.weight[0].any()) and bool(masks.frozen[0].any())
    weight = masks.weight
    masks.move_to(torch.device("cpu"))
    assert masks.weight is not weight and all(
        torch.equal(a, b) for a, b in zip(masks.weight, weight, strict=True)
    )


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path) -> None:
    masks = random_masks(mlp(), freeze=0.5)
    torch.save(masks.state(), tmp_path / "masks.pt")
    loaded = Masks.from_state(torch.load(tmp_path / "masks.pt", weights_only=True))
    assert loaded.prunable == masks.prunable
    for name in ("weight", "bias", "frozen", "frozen_bias"):
        assert all(
            torch.equal(a, b) for a, b in zip(getattr(loaded, name), getattr(masks, name), strict=True)
        )
    old = {key: value for key, value in masks.state().items() if not key.startswith("frozen")}
    assert not any(bool(m.any()) for m in Masks.from_state(old).frozen)  # before freezing existed


# ----------------------------------------------------------------------- choosing entries
def test_top_mask_keeps_the_k_highest_and_breaks_ties_by_position() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0], [-np.inf, 3.0, 0.5]])
    assert top_mask(scores, 2).tolist() == [[False, True, True], [False, False, False]]
    assert top_mask(scores, 3).tolist() == [[False, True, True], [False, True, False]]
    assert int(top_mask(scores, 6).sum()) == 6 and not bool(top_mask(scores, 0).any())


@pytest.mark.parametrize("allocation", ["global", "layer", "uniform", "erk"])
def test_select_keeps_pruned_entries_pruned_and_matches_the_shared_ranking(allocation) -> None:
    model = mlp()
    masks = random_masks(model, keep=0.7)
    scores = magnitudes(model)
    chosen = select(scores, masks, 0.6, allocation)
    expected = keep_highest(
        [np.where(masks.weight[i].numpy(), scores[i].double().numpy(), -np.inf) for i in (0, 1)],
        0.6,
        allocation,
    )
    for index in (0, 1):
        assert not bool((chosen.weight[index] & ~masks.weight[index]).any())
        assert np.array_equal(chosen.weight[index].numpy(), expected[index])
    assert torch.equal(chosen.weight[2], masks.weight[2])  # the output layer is not prunable
    assert chosen.weight[0] is not masks.weight[0] and chosen.frozen[0] is not masks.frozen[0]


@pytest.mark.parametrize("sparsity", [0.3, 0.75, 0.95])
def test_magnitude_pruning_of_a_network_and_of_a_torch_model_choose_the_same_weights(sparsity) -> None:
    model = mlp(seed=3)
    spec = InputSpec((WIDTHS[0],), np.zeros(WIDTHS[0]), np.ones(WIDTHS[0]))
    network = export_network(model, Masks.dense(model), spec)
    torch_masks = select(magnitudes(model), Masks.dense(model), sparsity, "global")
    pruned = magnitude_prune(network, sparsity)
    for layer, mask in zip(pruned.layers, torch_masks.weight, strict=True):
        assert np.array_equal(sp.csr_matrix(layer.weight).toarray() != 0, mask.numpy())
