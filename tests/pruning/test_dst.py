"""Dynamic sparse training (SET, RigL): the cosine drop schedule, drop-and-grow, mask updates."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from prunemip.pruning.dst import DynamicSparsity, cosine_drop_fraction, drop_and_grow
from prunemip.pruning.masks import Masks, linear_layers
from prunemip.pruning.scores import ScoreInputs, prune_by_scores
from tests.pruning.test_methods import batch, mlp


def test_cosine_drop_fraction_schedule() -> None:
    assert cosine_drop_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert cosine_drop_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert cosine_drop_fraction(100, 0.3, 100) == pytest.approx(0.0)
    assert cosine_drop_fraction(500, 0.3, 100) == pytest.approx(0.0)


@given(seed=st.integers(0, 2**16), fraction=st.floats(0.0, 0.9))
def test_drop_and_grow_rules(seed: int, fraction: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(9, 7, generator=generator)
    mask = torch.rand(9, 7, generator=generator) < 0.4
    grads = torch.randn(9, 7, generator=generator).abs()
    kept, grown = drop_and_grow(weight * mask, mask, grads, fraction)
    n_active = int(mask.sum())
    n_prune = math.floor(n_active * fraction)
    assert int(kept.sum()) == n_active - n_prune and int(grown.sum()) == n_prune
    assert not bool((kept & grown).any())
    assert bool((kept <= mask).all())  # only active weights are kept
    if n_prune:
        assert float((weight.abs())[kept].min()) >= float(weight.abs()[mask & ~kept].max())
        assert float(grads[grown].min()) >= float(grads[~kept & ~grown].max())


def _dst_setup(mode: str):
    model = mlp()
    masks = prune_by_scores("random", model, Masks.dense(model), ScoreInputs(seed=1), 0.7, "erk")
    masks.apply(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images, labels = batch()
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        masks.mask_gradients(model)
        optimizer.step()
        masks.apply(model)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()
    return model, masks, optimizer


class _RecordingDST(DynamicSparsity):
    def update(self, step, model, masks, optimizer, grow_scores):
        self.seen = [None if s is None else s.clone() for s in grow_scores]
        self.before = masks.copy()
        super().update(step, model, masks, optimizer, grow_scores)


@pytest.mark.parametrize("mode", ["rigl", "set"])
def test_dst_update_keeps_counts_zeroes_new_weights_and_their_optimizer_state(mode: str) -> None:
    model, masks, optimizer = _dst_setup(mode)
    before = masks.copy()
    weights_before = [layer.weight.detach().clone() for layer in linear_layers(model)]
    callback = _RecordingDST(mode, 0.5, 10, 100, seed=2)
    if mode == "rigl":
        assert callback.before_step(0, model, masks, optimizer) is False  # no optimizer step on an update
    else:
        callback.after_step(0, model, masks, optimizer, 1e-2)
    assert callback.updates == 1
    for index, layer in enumerate(linear_layers(model)):
        old, new = before.weight[index], masks.weight[index]
        assert int(old.sum()) == int(new.sum())
        if not masks.prunable[index]:
            assert torch.equal(old, new)
            continue
        grown = new & ~old
        assert bool(grown.any())
        assert bool((layer.weight[grown] == 0).all())
        stayed = new & old
        assert torch.equal(layer.weight.detach()[stayed], weights_before[index][stayed])
        state = optimizer.state[layer.weight]
        for key in ("exp_avg", "exp_avg_sq"):
            assert bool((state[key][grown] == 0).all()) and bool((state[key][~new] == 0).all())


def test_rigl_grow_scores_are_the_dense_gradient() -> None:
    model, masks, optimizer = _dst_setup("rigl")
    images, labels = batch()
    effective = [
        (layer.weight * m).detach().requires_grad_()
        for layer, m in zip(linear_layers(model), masks.weight, strict=True)
    ]
    h = images
    for i, (w, layer) in enumerate(zip(effective, linear_layers(model), strict=True)):
        h = nn.functional.linear(h, w, layer.bias.detach())
        h = torch.relu(h) if i < len(effective) - 1 else h
    dense = torch.autograd.grad(nn.functional.cross_entropy(h, labels), effective)
    callback = _RecordingDST("rigl", 0.3, 10, 100)
    callback.before_step(0, model, masks, optimizer)
    for index, (seen, expected) in enumerate(zip(callback.seen, dense, strict=True)):
        torch.testing.assert_close(seen, expected)
        inactive = ~callback.before.weight[index]
        if masks.prunable[index]:
            assert bool((seen[inactive] != 0).any())  # the gradient is dense, not masked


def test_dst_updates_only_until_the_end_step_and_at_the_interval() -> None:
    callback = DynamicSparsity("set", 0.3, interval=10, end_step=35)
    due = []
    for step in range(60):
        if callback.due(step):
            due.append(step)
            callback.last_update = step
    assert due == [0, 10, 20, 30]
