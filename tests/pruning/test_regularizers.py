"""Training regularisers: interval, L1-ball and CROWN bounds of the RS loss, and the L1 penalty."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunemip.errors import PrunemipError
from prunemip.pruning.config import PruneConfig
from prunemip.pruning.masks import linear_layers
from prunemip.pruning.regularizers import Regularizer, ball_bounds, interval_bounds, l1_penalty, rs_loss
from tests.conftest import assert_one_line
from tests.pruning.test_methods import WIDTHS, batch, mlp


def test_interval_bounds_contain_sampled_pre_activations() -> None:
    model = mlp()
    x0 = torch.rand(1, WIDTHS[0])
    eps = 0.1
    lower, upper = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
    bounds = interval_bounds(model, lower, upper)
    assert_contain(model, bounds, lower + torch.rand(500, WIDTHS[0]) * (upper - lower))


def assert_contain(model: nn.Module, bounds, samples: torch.Tensor, tol: float = 1e-5) -> None:
    """Every hidden pre-activation of every sample lies within ``bounds``."""
    h = samples
    with torch.no_grad():
        for layer, (low, high) in zip(linear_layers(model)[:-1], bounds, strict=True):
            z = layer(h)
            assert bool((z >= low - tol).all() and (z <= high + tol).all())
            h = torch.relu(z)


def l1_ball_samples(x0: torch.Tensor, delta: float, n: int, seed: int = 0) -> torch.Tensor:
    """Points of the L1 ball of radius ``delta`` around ``x0`` within [0, 1]: random
    directions at random radii, and every vertex x0 ± δ·e_i, all clipped to the box
    (clipping only moves a point towards x0)."""
    generator = torch.Generator().manual_seed(seed)
    size = x0.shape[1]
    directions = torch.randn(n, size, generator=generator) * (torch.rand(n, size, generator=generator) < 0.2)
    directions = directions / directions.abs().sum(dim=1, keepdim=True).clamp(min=1e-12)
    radii = delta * torch.rand(n, 1, generator=generator)
    vertices = delta * torch.cat([torch.eye(size), -torch.eye(size)])
    return (x0 + torch.cat([directions * radii, vertices])).clamp(0, 1)


@pytest.mark.parametrize("delta", [0.3, 5.0])
def test_l1_ball_bounds_contain_the_ball_and_beat_its_bounding_box(delta: float) -> None:
    model = mlp()
    x0 = torch.rand(1, WIDTHS[0], generator=torch.Generator().manual_seed(3))
    bounds = ball_bounds(model, x0, ("l1", delta))
    samples = l1_ball_samples(x0, delta, 2000)
    assert bool(((samples - x0).abs().sum(dim=1) <= delta + 1e-5).all())
    assert_contain(model, bounds, samples)
    box = interval_bounds(model, (x0 - delta).clamp(0, 1), (x0 + delta).clamp(0, 1))
    for (low, high), (box_low, box_high) in zip(bounds, box, strict=True):
        assert bool((low >= box_low - 1e-6).all() and (high <= box_high + 1e-6).all())
    if delta == 5.0:  # the box is all of [0, 1]^n: only Hölder's bound makes the first layer tight
        assert bool((bounds[0][1] - bounds[0][0] < box[0][1] - box[0][0] - 1e-3).any())


@pytest.mark.parametrize(("norm", "radius"), [("linf", 0.1), ("l1", 2.0)])
def test_crown_rs_bounds_contain_the_ball_and_beat_intervals_on_a_deep_net(norm: str, radius: float) -> None:
    widths = (12, 16, 16, 16, 16, 4)
    model = mlp(widths, seed=2)
    x0 = torch.rand(3, widths[0], generator=torch.Generator().manual_seed(4))
    crown = ball_bounds(model, x0, (norm, radius), method="crown")
    ia = ball_bounds(model, x0, (norm, radius))
    for image in range(3):
        centre = x0[image : image + 1]
        if norm == "l1":
            samples = l1_ball_samples(centre, radius, 1000, seed=image)
        else:
            low, high = (centre - radius).clamp(0, 1), (centre + radius).clamp(0, 1)
            corners = torch.where(torch.rand(500, widths[0]) < 0.5, low, high)
            samples = torch.cat([low + torch.rand(500, widths[0]) * (high - low), corners])
        assert_contain(model, [(low[image], high[image]) for low, high in crown], samples)
    widths_crown = sum(float((high - low).detach().sum()) for low, high in crown[1:])
    widths_ia = sum(float((high - low).detach().sum()) for low, high in ia[1:])
    for (low, high), (ia_low, ia_high) in zip(crown, ia, strict=True):
        assert bool((low >= ia_low).all() and (high <= ia_high).all())
    assert widths_crown < 0.9 * widths_ia


@pytest.mark.parametrize(("norm", "radius"), [("linf", 0.1), ("l1", 2.0)])
def test_crown_rs_bounds_of_removed_neurons_match_the_compacted_net(norm: str, radius: float) -> None:
    """Neurons zeroed by neuron pruning (no weights in, zero bias) are skipped by the CROWN
    substitution: the kept neurons' bounds equal those of the net without them, the removed
    ones are exactly [0, 0]."""
    widths = (12, 16, 16, 16, 4)
    model = mlp(widths, seed=5, dtype=torch.float64)
    layers = linear_layers(model)
    kept = [torch.tensor([0, 2, 3, 5, 8, 9, 11, 14]), torch.tensor([1, 4, 6, 7, 10, 15])]
    kept.append(torch.arange(0, 16, 2))
    with torch.no_grad():
        for layer, rows in zip(layers[:-1], kept, strict=True):
            removed = ~torch.isin(torch.arange(layer.out_features), rows)
            layer.weight[removed] = 0.0
            layer.bias[removed] = 0.0
    compact = mlp((12, 8, 6, 8, 4), dtype=torch.float64)
    with torch.no_grad():
        for small, big, rows, columns in zip(
            linear_layers(compact), layers, [*kept, torch.arange(4)], [torch.arange(12), *kept], strict=True
        ):
            small.weight.copy_(big.weight[rows][:, columns])
            small.bias.copy_(big.bias[rows])
    x0 = torch.rand(3, widths[0], generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    full = ball_bounds(model, x0, (norm, radius), method="crown")
    small = ball_bounds(compact, x0, (norm, radius), method="crown")
    for (low, high), (small_low, small_high), rows in zip(full, small, kept, strict=True):
        torch.testing.assert_close(low[:, rows], small_low)
        torch.testing.assert_close(high[:, rows], small_high)
        removed = ~torch.isin(torch.arange(low.shape[1]), rows)
        assert bool((low[:, removed] == 0).all() and (high[:, removed] == 0).all())


def test_rs_loss_sums_one_term_per_ball() -> None:
    model = mlp()
    images, _ = batch()
    config = PruneConfig(rs_weight=0.5, rs_eps=0.05, rs_l1=2.0)
    assert config.rs_balls == (("linf", 0.05), ("l1", 2.0))
    total = Regularizer(0.0, 0.5, config.rs_balls).extra_loss(model, images)
    expected = 0.5 * (rs_loss(model, images, 0.05) + rs_loss(model, images, 2.0, norm="l1"))
    assert total is not None
    torch.testing.assert_close(total, expected)
    assert PruneConfig(rs_weight=0.5, rs_eps=0.0, rs_l1=2.0).rs_balls == (("l1", 2.0),)
    with pytest.raises(PrunemipError) as error:
        PruneConfig(rs_weight=0.5, rs_eps=0.0)
    assert_one_line(error, "--rs-eps", "--rs-l1")
    with pytest.raises(PrunemipError):
        PruneConfig(rs_weight=0.5, rs_l1=-1.0)
    with pytest.raises(PrunemipError) as error:
        PruneConfig(rs_weight=0.5, rs_bounds="lp")
    assert_one_line(error, "lp", "crown")


def test_rs_loss_is_differentiable_and_l1_is_the_weight_norm() -> None:
    model = mlp()
    images, _ = batch()
    loss = rs_loss(model, images, 0.1)
    loss.backward()
    assert all(
        layer.weight.grad is not None and bool(layer.weight.grad.abs().sum() > 0)
        for layer in linear_layers(model)[:-1]
    )
    expected = sum(float(layer.weight.detach().abs().sum()) for layer in linear_layers(model))
    assert l1_penalty(model).item() == pytest.approx(expected)
