"""The training loop under masks, and resumable runs of every method family on digits."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import prunemip.pruning.context as context
import prunemip.pruning.pipeline as pipeline
import prunemip.pruning.training as training
from prunemip.data import load_dataset
from prunemip.errors import PrunemipError
from prunemip.model_io import load_network
from prunemip.pruning.config import PruneConfig, RunConfig, TrainConfig
from prunemip.pruning.dst import DynamicSparsity
from prunemip.pruning.gmp import GradualMagnitude
from prunemip.pruning.masks import Masks, linear_layers
from prunemip.pruning.scores import ScoreInputs, prune_by_scores
from prunemip.pruning.training import Callback, TrainOptions, build_mlp, lr_factor, train
from tests.conftest import assert_one_line

TINY = TrainConfig(epochs=2, batch_size=64, lr=3e-3)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train")


def sparse_model(seed: int = 0, sparsity: float = 0.6) -> tuple[nn.Module, Masks]:
    model = build_mlp(64, (24, 16), 10, seed=seed)
    masks = prune_by_scores("random", model, Masks.dense(model), ScoreInputs(seed=seed), sparsity, "global")
    return model, masks


class UntrainedChecker(Callback):
    """Asserts after every step that pruned entries are exactly zero, frozen ones exactly at
    their values before training (a wholly frozen tensor gets no gradient at all), and the
    optimizer's per-entry state is exactly zero at both."""

    def __init__(self, model: nn.Module, masks: Masks) -> None:
        self.initial = [parameter.detach().clone() for parameter, _ in masks.pairs(model)]
        self.steps = 0

    def after_step(self, step, model, masks, optimizer, lr) -> None:
        frozen = [f for pair in zip(masks.frozen, masks.frozen_bias, strict=True) for f in pair]
        entries = zip(masks.pairs(model), frozen, self.initial, strict=True)
        for (parameter, mask), is_frozen, initial in entries:
            assert bool((parameter.detach()[~mask] == 0).all())
            assert torch.equal(parameter.detach()[is_frozen], initial[is_frozen])
            if bool(is_frozen.all()):
                assert parameter.grad is None and not parameter.requires_grad
            for value in optimizer.state.get(parameter, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                    assert bool((value[~mask | is_frozen] == 0).all())
        self.steps += 1


#: Optimizers whose momentum, moments and weight decay (coupled, and AdamW's decoupled)
#: would move untrained entries if they were not kept out.
DECAYING = pytest.mark.parametrize(
    "config",
    [
        replace(TINY, optimizer="sgd", momentum=0.9, weight_decay=5e-2, lr=0.05),
        replace(TINY, optimizer="adam", weight_decay=5e-2),
        replace(TINY, optimizer="adamw", weight_decay=5e-1),
    ],
    ids=["sgd-momentum-wd", "adam-wd", "adamw-wd"],
)


@DECAYING
def test_pruned_weights_stay_exactly_zero_through_optimizer_steps(digits, config) -> None:
    model, masks = sparse_model()
    masks.bias[0][:5] = False  # a masked bias, as after neuron pruning
    before = [layer.weight.detach().clone() for layer in linear_layers(model)]
    checker = UntrainedChecker(model, masks)
    train(model, digits, config, masks, TrainOptions(callbacks=[checker]))
    assert checker.steps == 2 * 23
    for layer, old, mask in zip(linear_layers(model), before, masks.weight, strict=True):
        assert bool((layer.weight[~mask] == 0).all())
        assert not torch.equal(layer.weight[mask], old[mask])  # the kept weights did train
    assert bool((linear_layers(model)[0].bias[:5] == 0).all())


def test_mask_changes_during_training_keep_the_invariants(digits) -> None:
    for callback in (
        DynamicSparsity("rigl", 0.3, interval=5, end_step=30, seed=0),
        DynamicSparsity("set", 0.3, interval=5, end_step=30, seed=0),
        GradualMagnitude(0.8, "global", begin=3, end=30, interval=4),
    ):
        model, masks = sparse_model(sparsity=0.0 if isinstance(callback, GradualMagnitude) else 0.8)
        counts = [int(m.sum()) for m in masks.weight]
        checker = UntrainedChecker(model, masks)
        config = replace(TINY, optimizer="sgd", weight_decay=1e-3, lr=0.05)
        train(model, digits, config, masks, TrainOptions(callbacks=[callback, checker]))
        if isinstance(callback, DynamicSparsity):
            assert callback.updates == 7
            assert [int(m.sum()) for m in masks.weight] == counts
        else:
            assert masks.nnz() == round(0.2 * masks.size())


def test_rigl_makes_no_optimizer_step_on_an_update_step(digits) -> None:
    model, masks = sparse_model(sparsity=0.8)
    before_weights = [layer.weight.detach().clone() for layer in linear_layers(model)]
    before_masks = masks.copy()
    callback = DynamicSparsity("rigl", 0.3, interval=100, end_step=100)
    train(model, digits, TINY, masks, TrainOptions(callbacks=[callback], stop_step=1))  # step 0 updates
    assert callback.updates == 1
    for layer, old, old_mask, new_mask in zip(
        linear_layers(model), before_weights, before_masks.weight, masks.weight, strict=True
    ):
        stayed = old_mask & new_mask
        assert torch.equal(layer.weight.detach()[stayed], old[stayed])


def test_training_is_deterministic_and_resumable_mid_run(digits) -> None:
    def run(stop=None, start=0, model=None):
        model = model or build_mlp(64, (16,), 10, seed=3)
        train(model, digits, TINY, options=TrainOptions(start_step=start, stop_step=stop))
        return model

    full = run()
    again = run()
    split = run(model=run(stop=10), start=10)  # same batches; a fresh Adam at step 10 differs
    for a, b in zip(full.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(full.parameters(), split.parameters(), strict=True))


def test_lr_schedules() -> None:
    assert lr_factor(0, 100, replace(TINY, schedule="cosine")) == 1.0
    assert lr_factor(50, 100, replace(TINY, schedule="cosine")) == pytest.approx(0.5)
    step = replace(TINY, schedule="step", step_milestones=(0.5, 0.75), step_gamma=0.1)
    assert [lr_factor(t, 100, step) for t in (0, 49, 50, 75, 99)] == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert lr_factor(70, 100, replace(TINY, schedule="none")) == 1.0


def test_cuda_without_a_gpu_is_a_clear_error(digits) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(PrunemipError) as error:
        train(build_mlp(64, (8,), 10), digits, replace(TINY, device="cuda"))
    assert_one_line(error, "cuda", "--device cpu")


# ----------------------------------------------------------------------- runs
def experiment(method: str, sparsity: float = 0.8, **prune) -> RunConfig:
    return RunConfig(
        "digits", (24, 16), replace(TINY, epochs=2), PruneConfig(method=method, sparsity=sparsity, **prune)
    )


FAST = {
    "dense": {},
    "random": {},
    "magnitude": {"allocation": "layer"},
    "snip": {},
    "grasp": {},
    "synflow": {"synflow_iterations": 10},
    "set": {"update_interval": 5},
    "rigl": {"update_interval": 5, "allocation": "uniform"},
    "gmp": {"update_interval": 5},
    "neuron-magnitude": {"finetune_epochs": 1},
    "neuron-random": {"finetune_epochs": 1},
    "group-lasso": {"finetune_epochs": 1, "group_lasso": 0.05},
}


@pytest.mark.parametrize("method", list(FAST))
def test_every_method_runs_exports_and_records_its_metadata(tmp_path, method) -> None:
    config = experiment(method, 0.0 if method == "dense" else 0.8, **FAST[method])
    outcome = pipeline.run_training(config, tmp_path)
    network, summary = outcome.network, outcome.summary
    if method == "rigl":  # uniform allocation: the first layer (64·24 of 1920 weights) stays dense
        assert summary.sparsity == pytest.approx(0.8 * 384 / 1920, abs=1e-3)
    elif config.prune.spec.family == "structured":  # whole neurons: at least the target
        assert config.prune.sparsity <= summary.sparsity < config.prune.sparsity + 0.05
    else:
        assert summary.sparsity == pytest.approx(config.prune.sparsity, abs=1e-3)
    assert outcome.masks.path_count() > 0
    meta = network.metadata
    assert meta["method"] == method and meta["hparams"] == config.prune.hparams()
    assert meta["config_hash"] in str(outcome.run_dir) and meta["data_provenance"]["dataset"] == "digits"
    assert meta["test_accuracy"] == pytest.approx(summary.accuracy)
    assert 0.0 <= summary.accuracy <= 1.0 and summary.compression_ratio >= 1.0
    images = load_dataset("digits", "test").flat()[:50]
    with torch.no_grad():
        expected = outcome.model.double()(torch.as_tensor(images)).numpy()
    np.testing.assert_allclose(network.forward(images), expected, rtol=0, atol=1e-10)
    label = f"{method}-{config.prune.sparsity:g}"
    assert load_network(outcome.run_dir / f"network-{label}.npz").nnz == network.nnz
    assert json.loads((outcome.run_dir / f"report-{label}.json").read_text())["method"] == method


def test_a_finished_run_is_not_retrained(tmp_path, monkeypatch) -> None:
    calls = []
    original = context.train
    monkeypatch.setattr(context, "train", lambda *a, **k: calls.append(1) or original(*a, **k))
    config = experiment("imp", 0.36, imp_fraction=0.2)
    first = pipeline.run_training(config, tmp_path)
    levels = ("level-0", f"level-1-{round(0.8 * 1920)}", f"level-2-{round(0.64 * 1920)}")
    assert len(calls) == 3 and first.summary.trained_steps == levels
    second = pipeline.run_training(config, tmp_path)
    assert len(calls) == 3 and second.summary.trained_steps == ()
    assert second.network.nnz == first.network.nnz
    np.testing.assert_array_equal(second.network.layers[0].weight.data, first.network.layers[0].weight.data)
    (first.run_dir / f"{levels[2]}.pt").unlink()  # a crash before the last level finished
    third = pipeline.run_training(config, tmp_path)
    assert third.summary.trained_steps == levels[2:]
    np.testing.assert_array_equal(third.network.layers[0].weight.data, first.network.layers[0].weight.data)
    deeper = pipeline.run_training(
        replace(config, prune=replace(config.prune, sparsity=1 - 0.8**3)), tmp_path
    )
    assert deeper.run_dir == first.run_dir  # IMP levels are shared by every target sparsity
    assert deeper.summary.trained_steps == (f"level-3-{round(0.512 * 1920)}",)
    other = pipeline.run_training(replace(config, train=replace(config.train, seed=1)), tmp_path)
    assert other.run_dir != first.run_dir and len(other.summary.trained_steps) == 3


def test_imp_rewinds_bit_exactly_with_a_fresh_optimizer_per_level(tmp_path, monkeypatch) -> None:
    starts, optimizers = [], []
    original_train, original_optimizer = context.train, training.make_optimizer

    def spy(model, data, config, masks, options):
        starts.append(
            ({k: v.clone() for k, v in model.state_dict().items()}, masks.copy(), options.start_step)
        )
        return original_train(model, data, config, masks, options)

    monkeypatch.setattr(context, "train", spy)
    monkeypatch.setattr(training, "make_optimizer", lambda *a: optimizers.append(1) or original_optimizer(*a))
    outcome = pipeline.run_training(experiment("imp", 1 - 0.8**3, rewind_iteration=7), tmp_path)
    assert len(starts) == len(optimizers) == 5  # pretrain, level 0, levels 1-3
    theta_k = starts[1][0]
    size = outcome.masks.size()
    for level, (state, masks, start) in enumerate(starts[1:]):
        assert start == 7
        assert masks.nnz() == round(0.8**level * size)
        for index, mask in enumerate(masks.weight):
            key = f"{2 * index + 1}.weight"
            assert torch.equal(state[key][mask], theta_k[key][mask])


def test_lottery_controls_reuse_the_imp_levels(tmp_path) -> None:
    config = experiment("imp", 0.5, imp_rounds=2)
    imp = pipeline.run_training(config, tmp_path)
    reinit = pipeline.run_training(
        replace(config, prune=replace(config.prune, method="imp-reinit")), tmp_path
    )
    random = pipeline.run_training(
        replace(config, prune=replace(config.prune, method="imp-random")), tmp_path
    )
    assert reinit.run_dir == random.run_dir == imp.run_dir
    final = imp.masks.nnz()
    assert reinit.summary.trained_steps == (f"control-reinit-{final}",)
    assert random.summary.trained_steps == (f"control-random-{final}",)
    assert all(torch.equal(a, b) for a, b in zip(reinit.masks.weight, imp.masks.weight, strict=True))
    assert [int(m.sum()) for m in random.masks.weight] == [int(m.sum()) for m in imp.masks.weight]
    assert not torch.equal(random.masks.weight[0], imp.masks.weight[0])


def test_prune_a_trained_network_and_fine_tune(tmp_path) -> None:
    dense = pipeline.run_training(experiment("dense", 0.0), tmp_path)
    config = experiment("magnitude", 0.9, finetune_epochs=1)
    outcome = pipeline.prune_network(dense.network, config, tmp_path)
    assert outcome.summary.sparsity == pytest.approx(0.9, abs=1e-3)
    assert outcome.network.metadata["hparams"]["allocation"] == "global"  # trained: one ranking
    assert outcome.summary.accuracy_before_finetune is not None
    assert outcome.summary.trained_steps == ("finetune",)
    again = pipeline.prune_network(
        outcome.network, replace(config, prune=replace(config.prune, sparsity=0.95)), tmp_path
    )
    assert again.summary.sparsity == pytest.approx(0.95, abs=1e-3)
    with pytest.raises(PrunemipError) as error:
        pipeline.prune_network(dense.network, experiment("rigl"), tmp_path)
    assert_one_line(error, "rigl", "prunemip train", "magnitude")


@pytest.mark.parametrize("rs_bounds", ["ia", "crown"])
def test_regularisers_lower_the_rs_loss(tmp_path, rs_bounds) -> None:
    from prunemip.pruning.regularizers import rs_loss

    images = torch.as_tensor(load_dataset("digits", "test").flat()[:200], dtype=torch.float32)
    losses = []
    for weight in (0.0, 0.05):
        options = {"rs_bounds": rs_bounds} if weight else {}
        outcome = pipeline.run_training(
            experiment("dense", 0.0, rs_weight=weight, rs_eps=0.05, l1=1e-5, **options), tmp_path
        )
        losses.append(rs_loss(outcome.model.float(), images, 0.05, method=rs_bounds).item())
    assert losses[1] < losses[0]


def test_prune_runs_with_other_fine_tuning_lengths_get_their_own_directories(tmp_path):
    """A run is named by everything that decides its result: fine-tuning 1 or 2 epochs differ."""
    dense = pipeline.run_training(
        RunConfig(hidden=(8,), train=TrainConfig(epochs=1)), runs_dir=tmp_path
    ).network
    runs = [
        pipeline.prune_network(
            dense,
            RunConfig(
                hidden=(8,), prune=PruneConfig(method="magnitude", sparsity=0.5, finetune_epochs=epochs)
            ),
            runs_dir=tmp_path,
        )
        for epochs in (1, 2)
    ]
    assert runs[0].run_dir != runs[1].run_dir
    assert runs[1].summary.trained_steps == ("finetune",)
