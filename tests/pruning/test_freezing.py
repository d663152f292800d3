"""Freezing at initialisation (dimensionality-reduced training): selection, enforcement
through optimizer steps, counts, export, configuration errors and the CLI."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import prunemip.pruning.pipeline as pipeline
from prunemip.data import load_dataset
from prunemip.errors import PrunemipError
from prunemip.model_io import load_network
from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig, parse_layers
from prunemip.pruning.freezing import freeze_masks
from prunemip.pruning.masks import Masks, linear_layers
from prunemip.pruning.registry import FREEZERS
from prunemip.pruning.scores import SCORES, ScoreInputs, prune_by_scores, score_batch
from prunemip.pruning.training import TrainOptions, apply_weight_decay, build_mlp, make_optimizer, train
from tests.cli.test_cli import assert_user_error, run
from tests.conftest import assert_one_line
from tests.pruning.test_training import DECAYING, UntrainedChecker

TINY = TrainConfig(epochs=2, batch_size=64, lr=3e-3)
HIDDEN = (24, 16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train")


def pruned_and_frozen(digits, sparsity: float = 0.4, **freezing) -> tuple[nn.Module, Masks, PruneConfig]:
    """A fresh MLP, randomly pruned to ``sparsity``, with ``freezing`` applied."""
    prune = PruneConfig(method="random" if sparsity else "dense", sparsity=sparsity, **freezing)
    model = build_mlp(64, HIDDEN, 10, seed=0)
    masks = Masks.dense(model)
    if sparsity:
        masks = prune_by_scores("random", model, masks, ScoreInputs(seed=0), sparsity, "global")
        masks.apply(model)
    return model, freeze_masks(prune, model, masks, digits, seed=0), prune


# ----------------------------------------------------------------------- enforcement
@DECAYING
def test_frozen_entries_stay_bit_identical_to_their_initial_values(digits, config) -> None:
    model, masks, _ = pruned_and_frozen(digits, 0.4, freeze="random", freeze_fraction=0.4, freeze_layers=(3,))
    initial = [layer.weight.detach().clone() for layer in linear_layers(model)]
    checker = UntrainedChecker(model, masks)
    train(model, digits, config, masks, TrainOptions(callbacks=[checker]))
    assert checker.steps == 2 * 23
    layers = zip(linear_layers(model), initial, masks.weight, masks.frozen, strict=True)
    for layer, old, kept, frozen in layers:
        weight = layer.weight.detach()
        assert torch.equal(weight[frozen], old[frozen])
        assert bool((weight[~kept] == 0).all())
        trainable = kept & ~frozen
        if trainable.any():
            assert bool((weight[trainable] != old[trainable]).float().mean() > 0.9)
    assert torch.equal(linear_layers(model)[2].bias.detach(), checker.initial[5])
    assert all(p.requires_grad for p in model.parameters())  # switched back on after training


def test_plain_torch_weight_decay_would_move_frozen_entries(digits) -> None:
    """The control: masked gradients alone do not keep frozen weights still under weight decay."""
    model, masks, _ = pruned_and_frozen(digits, 0.0, freeze="random", freeze_fraction=0.5)
    before = linear_layers(model)[0].weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    images = torch.rand(8, 64, generator=torch.Generator().manual_seed(0))
    nn.functional.cross_entropy(model(images), torch.arange(8)).backward()
    masks.mask_gradients(model)
    optimizer.step()
    frozen = masks.frozen[0]
    assert not torch.equal(linear_layers(model)[0].weight.detach()[frozen], before[frozen])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_loop_weight_decay_matches_torch_on_trainable_entries(optimizer: str) -> None:
    config = replace(TINY, optimizer=optimizer, weight_decay=0.1, lr=0.01)
    ours, reference = build_mlp(64, (8,), 10, seed=1), build_mlp(64, (8,), 10, seed=1)
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    extra = {"momentum": config.momentum} if optimizer == "sgd" else {}
    ref_opt = kind(  # the fused kernels, as make_optimizer: the same update, bit for bit
        reference.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True, **extra
    )
    ours_opt = make_optimizer(ours, config)
    masks = Masks.dense(ours)
    images, labels = torch.rand(16, 64, generator=torch.Generator().manual_seed(2)), torch.arange(16) % 10
    for _ in range(3):
        for model, opt in ((ours, ours_opt), (reference, ref_opt)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(images), labels).backward()
            if model is ours:
                apply_weight_decay(model, masks, config, config.lr)
            opt.step()
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        if optimizer == "adamw":  # w − ηλw vs w·(1 − ηλ): equal up to rounding
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        else:  # the same g + λw as torch's weight_decay
            assert torch.equal(a, b)


# ----------------------------------------------------------------------- selection and counts
def test_every_freezing_method_has_a_score() -> None:
    assert set(FREEZERS) <= set(SCORES)


@pytest.mark.parametrize(
    ("sparsity", "fraction", "method"),
    [(0.0, 0.9, "random"), (0.0, 0.9, "snip"), (0.9, 0.0, None), (0.45, 0.45, "snip"), (0.3, 0.7, "random")],
)
def test_trainable_frozen_and_zero_counts_match_the_request(digits, sparsity, fraction, method) -> None:
    freezing = {"freeze": method, "freeze_fraction": fraction} if method else {}
    _, masks, _ = pruned_and_frozen(digits, sparsity, **freezing)
    size = 64 * 24 + 24 * 16  # the prunable (hidden) weights
    prunable_frozen = sum(int(masks.frozen[i].sum()) for i in (0, 1))
    prunable_zero = sum(int((~masks.weight[i]).sum()) for i in (0, 1))
    assert prunable_frozen == round(fraction * size)
    assert prunable_zero == size - round((1 - sparsity) * size)
    counts = masks.parameter_counts()
    biases, output = 24 + 16 + 10, 16 * 10
    assert sum(c["trainable"] for c in counts) == size - prunable_frozen - prunable_zero + biases + output
    assert sum(c["frozen"] for c in counts) == prunable_frozen
    assert sum(c["weights_untrained"] for c in counts) == prunable_frozen + prunable_zero
    assert not bool(masks.frozen[2].any()) and not any(bool(f.any()) for f in masks.frozen_bias)


def test_snip_freezing_freezes_exactly_what_snip_would_prune(digits) -> None:
    """FreezeNet: the frozen weights are SNIP's pruned ones, kept at θ₀ instead of zeroed."""
    model, masks, _ = pruned_and_frozen(digits, 0.0, freeze="snip", freeze_fraction=0.7)
    images, labels = score_batch(digits, 10, 0, torch.device("cpu"))
    snip = prune_by_scores("snip", model, Masks.dense(model), ScoreInputs(images, labels, 0), 0.7, "global")
    for index in (0, 1):
        assert torch.equal(masks.frozen[index], ~snip.weight[index])


def test_frozen_layers_count_towards_the_fraction(digits) -> None:
    _, masks, _ = pruned_and_frozen(digits, 0.0, freeze="random", freeze_fraction=0.9, freeze_layers=(2,))
    assert bool(masks.frozen[1].all()) and bool(masks.frozen_bias[1].all())
    assert int(masks.frozen[0].sum()) + 24 * 16 == round(0.9 * (64 * 24 + 24 * 16))
    with pytest.raises(PrunemipError) as error:
        pruned_and_frozen(digits, 0.0, freeze="random", freeze_fraction=0.1, freeze_layers=(1,))
    assert_one_line(error, "frozen layers hold 1536", "--freeze-fraction 0.1")


def test_frozen_masks_survive_a_checkpoint_and_old_checkpoints_load(digits) -> None:
    _, masks, _ = pruned_and_frozen(digits, 0.4, freeze="snip", freeze_fraction=0.3, freeze_layers=(3,))
    restored = Masks.from_state(masks.state())
    for a, b in zip(masks.frozen + masks.frozen_bias, restored.frozen + restored.frozen_bias, strict=True):
        assert torch.equal(a, b)
    old = {key: value for key, value in masks.state().items() if not key.startswith("frozen")}
    assert not any(bool(f.any()) for f in Masks.from_state(old).frozen)


# ----------------------------------------------------------------------- pipeline and export
def test_a_pruned_and_frozen_run_exports_zeros_and_initial_values(tmp_path) -> None:
    prune = PruneConfig(method="random", sparsity=0.4, freeze="snip", freeze_fraction=0.4, freeze_layers=(3,))
    config = RunConfig("digits", HIDDEN, replace(TINY, optimizer="sgd", weight_decay=1e-2), prune)
    outcome = pipeline.run_training(config, tmp_path)
    network, masks = outcome.network, outcome.masks
    assert network.widths == [64, *HIDDEN, 10]  # no neuron removed: exported indices are the model's
    initial = linear_layers(build_mlp(64, HIDDEN, 10, seed=config.train.seed))
    for layer, init, kept, frozen in zip(network.layers, initial, masks.weight, masks.frozen, strict=True):
        weight, theta0 = layer.weight.toarray(), init.weight.detach().double().numpy()
        kept, frozen = kept.numpy(), frozen.numpy()
        assert np.all(weight[~kept] == 0)
        np.testing.assert_array_equal(weight[frozen], theta0[frozen])
        assert np.all(weight[frozen] != 0)  # frozen weights are ordinary nonzero weights
        assert layer.nnz == int(kept.sum())
    np.testing.assert_array_equal(network.layers[2].bias, initial[2].bias.detach().double().numpy())
    meta, summary = network.metadata, outcome.summary
    assert meta["hparams"]["freeze"] == "snip" and meta["hparams"]["freeze_layers"] == [3]
    assert meta["parameters"] == summary.parameter_totals()
    assert meta["weight_gradients_saved"] == pytest.approx((0.4 * 1920 + 0.4 * 1920 + 160) / 2080, abs=1e-3)
    saved = load_network(outcome.run_dir / "network-random-0.4.npz")
    np.testing.assert_array_equal(saved.layers[0].weight.toarray(), network.layers[0].weight.toarray())
    again = pipeline.run_training(config, tmp_path)
    assert again.summary.trained_steps == () and torch.equal(again.masks.frozen[0], masks.frozen[0])
    dense = pipeline.run_training(replace(config, prune=PruneConfig()), tmp_path)
    assert dense.run_dir != outcome.run_dir and "freeze" not in dense.network.metadata["hparams"]


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (
            {"method": "snip", "sparsity": 0.6, "freeze": "random", "freeze_fraction": 0.5},
            ["fractions sum to 1.1 > 1", "--freeze-fraction"],
        ),
        ({"freeze": "random", "freeze_fraction": 1.5}, ["freeze fraction must lie in (0, 1]", "1.5"]),
        ({"freeze": "random"}, ["freeze fraction must lie in (0, 1]"]),
        ({"freeze_fraction": 0.5}, ["needs a freezing method"]),
        ({"freeze": "freezenet", "freeze_fraction": 0.5}, ["unknown freezing method", "snip"]),
        (
            {"method": "rigl", "sparsity": 0.5, "freeze": "random", "freeze_fraction": 0.2},
            ["method rigl", "snip"],
        ),
        ({"method": "imp", "sparsity": 0.5, "freeze_layers": (1,)}, ["method imp"]),
        ({"freeze_layers": (2, 1)}, ["increasing order"]),
        ({"freeze_layers": (0,)}, ["numbered from 1"]),
    ],
)
def test_bad_freezing_is_a_one_line_error(options, fragments) -> None:
    with pytest.raises(PrunemipError) as error:
        PruneConfig(**options)
    assert_one_line(error, *fragments)


def test_frozen_layers_must_exist_and_leave_something_to_train(tmp_path) -> None:
    with pytest.raises(PrunemipError) as error:
        RunConfig("digits", HIDDEN, TINY, PruneConfig(freeze_layers=(4,)))
    assert_one_line(error, "cannot freeze layer 4", "3 linear layers")
    with pytest.raises(PrunemipError) as error:
        RunConfig("digits", HIDDEN, TINY, PruneConfig(freeze_layers=(1, 2, 3)))
    assert_one_line(error, "nothing to train")
    assert parse_layers("2, 1 2") == (1, 2)
    with pytest.raises(PrunemipError) as error:
        parse_layers("first")
    assert_one_line(error, "'first'")
    dense = pipeline.run_training(RunConfig("digits", (8,), replace(TINY, epochs=1)), tmp_path)
    frozen = RunConfig("digits", (8,), TINY, PruneConfig("magnitude", 0.5, freeze_layers=(1,)))
    with pytest.raises(PrunemipError) as error:
        pipeline.prune_network(dense.network, frozen, tmp_path)
    assert_one_line(error, "prunemip train")


# ----------------------------------------------------------------------- CLI
def test_train_cli_freezes_and_reports(tmp_path, capsys) -> None:
    model = tmp_path / "frozen.npz"
    method = ["--method", "snip", "--sparsity", "0.3"]
    freezing = ["--freeze", "random", "--freeze-fraction", "0.6", "--freeze-layers", "3"]
    output = ["--runs-dir", str(tmp_path / "runs"), "-o", str(model)]
    code, out, _ = run(
        ["train", "--arch", "16,16", "--epochs", "1", "--quiet", *method, *freezing, *output], capsys
    )
    assert code == 0, out
    assert "frozen" in out and "weight gradients saved" in out
    hparams = load_network(model).metadata["hparams"]
    assert (hparams["freeze"], hparams["freeze_fraction"], hparams["freeze_layers"]) == ("random", 0.6, [3])


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (
            ["--method", "snip", "--sparsity", "0.6", "--freeze", "snip", "--freeze-fraction", "0.5"],
            ["fractions sum to 1.1 > 1"],
        ),
        (["--freeze-layers", "1,x"], ["cannot read layers '1,x'"]),
        (["--freeze-layers", "3"], ["cannot freeze layer 3"]),
        (["--method", "gmp", "--sparsity", "0.5", "--freeze-layers", "1"], ["method gmp"]),
    ],
)
def test_train_cli_refuses_bad_freezing_in_one_line(tmp_path, capsys, monkeypatch, argv, fragments) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["train", "--arch", "8", "--epochs", "1", "--quiet", *argv], capsys)
    assert_user_error(code, err, *fragments)


# ----------------------------------------------------------------------- the study script
@pytest.mark.slow
def test_freezing_study_quick(capsys, tmp_path) -> None:
    path = Path(__file__).resolve().parents[2] / "experiments" / "freezing_study.py"
    spec = importlib.util.spec_from_file_location("freezing_study", path)
    assert spec is not None and spec.loader is not None
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    out = tmp_path / "freezing.json"
    quick = ["--hidden", "16", "16", "--epochs", "1", "--repeats", "1", "--images", "2", "--eps", "0.02"]
    result = study.main([*quick, "--time-limit", "10", "--out", str(out)])
    assert "weight grads saved" in capsys.readouterr().out and out.exists()
    training = {row["network"]: row for row in result["training"]}
    mip = {row["network"]: row for row in result["mip"]}
    dense, pruned = training["dense"], training["pruned 90% snip"]
    frozen = training["frozen 90% snip (FreezeNet)"]
    assert pruned["trainable"] == frozen["trainable"] < dense["trainable"]
    saved = round(0.9 * (64 * 16 + 16 * 16)) / (64 * 16 + 16 * 16 + 16 * 10)
    assert pruned["weight_gradients_saved"] == frozen["weight_gradients_saved"] == pytest.approx(saved)
    assert frozen["weights_nnz"] == dense["weights_nnz"] > pruned["weights_nnz"]
    assert mip["pruned 90% snip"]["mip_nnz"] < mip["frozen 90% snip (FreezeNet)"]["mip_nnz"]
