"""The training schedule of each method family, run inside a resumable :class:`Context`.

Each runner builds or receives a model, gets its masks from the family's mask logic,
and trains through ``ctx.fit`` (every named step is saved and skipped on a re-run). It
returns the final model and masks; the pipeline evaluates, exports and reports.

Dense and PaI runs freeze their chosen weights at initialisation, after pruning
(:mod:`prunemip.pruning.freezing`); the other families refuse freezing (their weights
or masks change during training).

Epoch budgets: dense, PaI, SET/RigL and GMP train ``epochs``; IMP trains ``epochs`` per
level (level 0 is the dense network, then one level per round); the structured methods
train ``epochs`` and then fine-tune ``finetune_epochs`` after removing neurons.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from prunemip.data import Dataset
from prunemip.pruning.config import PruneConfig
from prunemip.pruning.context import Context
from prunemip.pruning.dst import DynamicSparsity
from prunemip.pruning.gmp import GradualMagnitude
from prunemip.pruning.imp import imp_densities, imp_masks, random_masks_like
from prunemip.pruning.masks import Masks
from prunemip.pruning.scores import ScoreInputs, prune_by_scores, score_batch
from prunemip.pruning.structured import GroupLassoProximal, neuron_masks, neuron_norms, random_neuron_scores
from prunemip.pruning.training import TrainOptions

Runner = Callable[[Context], tuple[nn.Module, Masks]]


def run_dense(ctx: Context) -> tuple[nn.Module, Masks]:
    """Train the dense network (its chosen weights frozen at initialisation).

    Args:
        ctx: the run.

    Returns:
        The trained model and its masks.
    """
    model = ctx.new_model()
    return model, ctx.fit("train", model, ctx.freeze(model, ctx.dense_masks(model)))


def post_training_masks(
    prune: PruneConfig, model: nn.Module, masks: Masks, data: Dataset, seed: int
) -> Masks:
    """One-shot masks of ``prune``'s method for ``model`` as it is now.

    PaI scores (SNIP/GraSP on a stratified batch of ``data``; SynFlow iteratively) with the
    method's allocation, or neuron norms (random scores from ``seed`` for ``neuron-random``)
    for the structured methods.

    Args:
        prune: the method, its sparsity, allocation and scoring options.
        model: the model to score, as it is now (not changed).
        masks: the starting point: what they prune stays pruned.
        data: where SNIP and GraSP draw their scoring batch.
        seed: the seed of the scoring batch and of random scores.

    Returns:
        The new masks (not yet applied to ``model``).
    """
    if prune.method == "neuron-random":
        return neuron_masks(masks, random_neuron_scores(model, seed), prune.sparsity)
    if prune.spec.family == "structured":
        scores = neuron_norms(model, with_bias=prune.method == "group-lasso")
        return neuron_masks(masks, scores, prune.sparsity)
    images, labels = score_batch(data, prune.score_per_class, seed, masks.weight[0].device)
    inputs = ScoreInputs(images, labels, seed, prune.grasp_temperature)
    iterations = prune.synflow_iterations if prune.method == "synflow" else 1
    allocation = prune.resolved_allocation or "global"
    return prune_by_scores(prune.method, model, masks, inputs, prune.sparsity, allocation, iterations)


def one_shot(ctx: Context, model: nn.Module, masks: Masks) -> Masks:
    """The run's one-shot masks for ``model`` (scores from the training data).

    Args:
        ctx: the run.
        model: the model to score, as it is now.
        masks: the masks in force.

    Returns:
        The new masks (see :func:`post_training_masks`).
    """
    return post_training_masks(ctx.config.prune, model, masks, ctx.train_data, ctx.seed)


def run_pai(ctx: Context) -> tuple[nn.Module, Masks]:
    """Score at initialisation, prune once (SynFlow: iteratively), freeze, train the sparse network.

    Args:
        ctx: the run.

    Returns:
        The trained model and its masks.
    """
    model = ctx.new_model()
    masks = ctx.prune_step("prune", model, lambda: one_shot(ctx, model, ctx.dense_masks(model)))
    return model, ctx.fit("train", model, ctx.freeze(model, masks))


def run_imp(ctx: Context) -> tuple[nn.Module, Masks]:
    """IMP levels 0..R from θ_k, then the requested control (see :mod:`prunemip.pruning.imp`).

    Args:
        ctx: the run.

    Returns:
        The last trained model (level R or the control) and its masks.
    """
    prune = ctx.config.prune
    start = prune.rewind_iteration
    model = ctx.new_model()
    masks = ctx.dense_masks(model)
    after_rewind = TrainOptions(start_step=start)
    if start:
        masks = ctx.fit("pretrain", model, masks, TrainOptions(stop_step=start))
    rewind = {name: value.clone() for name, value in model.state_dict().items()}
    masks = ctx.fit("level-0", model, masks, after_rewind)
    size = masks.size()
    for level, density in enumerate(imp_densities(prune.sparsity, prune.imp_fraction, prune.imp_rounds), 1):
        step = f"level-{level}-{round(density * size)}"
        if not ctx.run.done(step):
            masks = imp_masks(model, masks, density)
            model.load_state_dict(rewind)
        masks = ctx.fit(step, model, masks, after_rewind)
        ctx.log(f"IMP level {level}: density {1 - masks.sparsity:.4f}, accuracy {ctx.accuracy(model):.4f}")
    final = masks.nnz()
    if prune.method == "imp-reinit":
        model = ctx.new_model(seed=ctx.seed + 1)
        masks = ctx.fit(f"control-reinit-{final}", model, masks, after_rewind)
    elif prune.method == "imp-random":
        model.load_state_dict(rewind)
        masks = ctx.fit(f"control-random-{final}", model, random_masks_like(masks, ctx.seed), after_rewind)
    return model, masks


def run_dst(ctx: Context) -> tuple[nn.Module, Masks]:
    """Random masks with the allocation's counts, evolved by SET or RigL while training.

    Args:
        ctx: the run.

    Returns:
        The trained model and its final masks.
    """
    prune = ctx.config.prune
    model = ctx.new_model()
    allocation = prune.resolved_allocation or "erk"
    masks = prune_by_scores(
        "random", model, ctx.dense_masks(model), ScoreInputs(seed=ctx.seed), prune.sparsity, allocation
    )
    end = round(prune.dst_end * ctx.total_steps())
    callback = DynamicSparsity(prune.method, prune.drop_fraction, prune.update_interval, end, ctx.seed)
    return model, ctx.fit("train", model, masks, TrainOptions(callbacks=[callback]))


def run_gmp(ctx: Context) -> tuple[nn.Module, Masks]:
    """Train dense while gradual magnitude pruning raises the sparsity along the cubic schedule.

    Args:
        ctx: the run.

    Returns:
        The trained model and its final masks.
    """
    prune = ctx.config.prune
    model = ctx.new_model()
    total = ctx.total_steps()
    allocation = prune.resolved_allocation or "global"
    begin, end = round(prune.gmp_begin * total), round(prune.gmp_end * total)
    callback = GradualMagnitude(prune.sparsity, allocation, begin, end, prune.update_interval)
    return model, ctx.fit("train", model, ctx.dense_masks(model), TrainOptions(callbacks=[callback]))


def run_structured(ctx: Context) -> tuple[nn.Module, Masks]:
    """Train (with the group-lasso proximal step), remove neurons, fine-tune.

    Args:
        ctx: the run.

    Returns:
        The fine-tuned model and its masks.
    """
    prune = ctx.config.prune
    model = ctx.new_model()
    callbacks = [GroupLassoProximal(prune.group_lasso)] if prune.method == "group-lasso" else []
    masks = ctx.fit("train", model, ctx.dense_masks(model), TrainOptions(callbacks=callbacks))
    return finetune_after_pruning(ctx, model, masks)


def finetune_after_pruning(ctx: Context, model: nn.Module, masks: Masks) -> tuple[nn.Module, Masks]:
    """Prune a trained model once, record its accuracy, fine-tune with the masks fixed.

    Args:
        ctx: the run.
        model: the trained model, pruned and fine-tuned in place.
        masks: the masks in force (what they prune stays pruned).

    Returns:
        The fine-tuned model and its masks.
    """
    masks = ctx.prune_step("prune", model, lambda: one_shot(ctx, model, masks))
    return model, ctx.fit("finetune", model, masks, TrainOptions(phase=1), ctx.config.prune.finetune_epochs)


RUNNERS: dict[str, Runner] = {
    "dense": run_dense,
    "pai": run_pai,
    "imp": run_imp,
    "dst": run_dst,
    "gmp": run_gmp,
    "structured": run_structured,
}
