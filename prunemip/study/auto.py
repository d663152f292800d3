"""The automatic search: the pruned network whose MIP should solve fastest within an accuracy budget.

``prunemip train --accuracy-budget``, ``prunemip prune --accuracy-budget`` and a study's
``auto`` method call :func:`search`. It never reads the test split: a stratified share of
the training split (``SearchSpace.val_fraction``, :func:`prunemip.data.load_dataset`'s
``"val"``) is held out, every network trains on the rest, and every accuracy it compares is
on the held-out part.

1. The dense model is trained (or given: ``prune``) and evaluated.
2. The bases are trained once and shared: the dense model for magnitude and neuron pruning,
   one GMP run per sparsity (Zhu & Gupta 2018), and one IMP chain (Frankle & Carbin 2019)
   whose levels at or above the smallest sparsity are IMP's candidates; the chain's level 0
   is the dense model's training, copied instead of redone.
3. Every candidate of the :class:`~prunemip.study.search_space.SearchSpace` (family ×
   sparsity × ReLU-stability weight; Xiao et al., ICLR 2019) is pruned from its base and
   fine-tuned in rounds of successive halving (Jamieson & Talwalkar, AISTATS 2016; the
   schedule and the promotion rule are in :mod:`prunemip.study.search_space`). Fine-tuning
   runs at a constant learning rate, so a promoted candidate continues where its last round
   stopped. After each round a candidate is evaluated: validation accuracy, and the MIP-cost
   proxy of its exported network (:mod:`prunemip.study.mip_cost`).
4. The choice is the candidate of least proxy within the budget of the dense model's
   validation accuracy; its network records how it was chosen (``metadata["auto_search"]``).

Every run lives in a content-keyed :class:`~prunemip.pruning.runs.RunDir` (the key holds the
validation split and, for a candidate, its base's key): a search called again resumes after
its last finished step and trains nothing already trained.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from torch import nn

from prunemip.data import Dataset, load_dataset
from prunemip.devices import torch_device
from prunemip.errors import PrunemipError
from prunemip.model_io import save_network
from prunemip.network import Network
from prunemip.pruning.config import PruneConfig, RunConfig
from prunemip.pruning.context import Context
from prunemip.pruning.export import export_network, training_metadata
from prunemip.pruning.imp import imp_densities
from prunemip.pruning.masks import Masks
from prunemip.pruning.methods import RUNNERS, one_shot
from prunemip.pruning.pipeline import network_fingerprint
from prunemip.pruning.runs import RunDir
from prunemip.pruning.training import TrainOptions, correct, hit_rate, steps_per_epoch
from prunemip.regions import BALL_NORMS
from prunemip.study.auto_report import write_candidates
from prunemip.study.mip_cost import DEFAULT_BALLS, Ball, cost_features
from prunemip.study.search_space import (
    DENSE,
    POST_TRAINING,
    Candidate,
    Evaluation,
    SearchResult,
    SearchSpace,
    candidates,
    check_budget,
    choose,
    paired_margin,
    promise_slack,
    round_epochs,
    survivors,
)
from prunemip.torch_io import network_to_module


@dataclass(frozen=True)
class SearchData:
    """The training part and the held-out validation part of a training split."""

    train: Dataset
    val: Dataset

    @classmethod
    def load(cls, config: RunConfig, val_fraction: float) -> SearchData:
        """Both parts of ``config``'s dataset (never its test split).

        Args:
            config: the dataset, its folder and its split seed.
            val_fraction: the share of the training split held out.

        Returns:
            The two parts.
        """
        parts = {
            split: load_dataset(
                config.dataset,
                split,
                data_dir=config.data_dir,
                seed=config.data_seed,
                val_fraction=val_fraction,
            )
            for split in ("train", "val")
        }
        return cls(parts["train"], parts["val"])

    def key(self) -> Any:
        """What identifies the split in run keys: the validation part's provenance."""
        return self.val.provenance.get("val", {"size": len(self.val)})


class _Feedback:
    """Rich progress of a search: candidates done per round, the training in progress, one line
    per evaluated candidate. Silent without a console."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.training: TaskID | None = None

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        if self.console is None:
            yield
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as self.progress:
            yield

    def task(self, description: str, total: int) -> TaskID | None:
        return None if self.progress is None else self.progress.add_task(description, total=total)

    def advance(self, task: TaskID | None, description: str | None = None) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(
                task, advance=1, **({} if description is None else {"description": description})
            )

    def done(self, task: TaskID | None) -> None:
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)

    def epoch(self, step: str, row: dict[str, float]) -> None:
        if self.progress is not None and self.training is not None:
            self.progress.update(
                self.training, completed=row["epoch"], total=row["epochs"], description=f"  training {step}"
            )

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)


@dataclass
class _Base:
    """A trained network candidates start from, and the key of where it came from."""

    key: str
    model: nn.Module
    masks: Masks
    ctx: Context | None = None


@dataclass
class _Candidate:
    """A candidate in the rounds: its run, its model and masks, the epochs it has had so far."""

    spec: Candidate
    ctx: Context
    model: nn.Module
    masks: Masks
    epochs: int = 0
    evaluation: Evaluation | None = None
    network: Network | None = None


class _Search:
    """One search's state: its data, runs, bases and the contexts it opened."""

    def __init__(
        self,
        config: RunConfig,
        budget: float,
        space: SearchSpace,
        balls: tuple[Ball, ...],
        data: SearchData,
        runs_dir: Path,
        feedback: _Feedback,
    ) -> None:
        self.config, self.budget, self.space, self.balls = config, budget, space, balls
        self.data, self.runs_dir, self.feedback = data, runs_dir, feedback
        self.device = torch_device(config.train.device)
        self.widths = [data.train.flat().shape[1], *config.hidden, len(data.train.classes)]
        self.points = data.val.flat()[: space.proxy_points]
        self.contexts: list[Context] = []
        self.bases: dict[tuple[str, float], _Base] = {}
        self.dense_accuracy = 0.0
        #: per validation image, whether the dense model is right (set by its evaluation)
        self.dense_correct = np.zeros(0, bool)
        radius = {norm: max((r for n, r in balls if n == norm), default=0.0) for norm in BALL_NORMS}
        self.rs_balls = {"rs_eps": radius["linf"], "rs_l1": radius["l1"]}

    def context(self, prune: PruneConfig, label: str, extra: dict[str, Any], finetune: bool) -> Context:
        """A context whose training data is the training part and whose evaluation data is validation."""
        train = replace(self.config.train, schedule="none") if finetune else self.config.train
        config = replace(self.config, train=train, prune=prune)
        key = {**config.key(), "validation": self.data.key(), **extra}
        run = RunDir(self.runs_dir, key, label, config.describe())
        ctx = Context(config, self.data.train, self.data.val, run, self.device, self.widths)
        ctx.on_epoch = self.feedback.epoch
        self.contexts.append(ctx)
        return ctx

    def train(self, label: str, ctx: Context, family: str) -> tuple[nn.Module, Masks]:
        """Run ``family``'s training schedule in ``ctx`` (loaded when done), with a progress row."""
        self.feedback.training = self.feedback.task(f"  training {label}", ctx.config.train.epochs)
        started = time.perf_counter()
        try:
            trained = RUNNERS[family](ctx)
        finally:
            self.feedback.done(self.feedback.training)
            self.feedback.training = None
        self.feedback.line(f"{label}: trained in {time.perf_counter() - started:.0f} s ({ctx.run.path.name})")
        return trained

    def dense_base(self, network: Network | None) -> _Base:
        """The dense model: ``network`` as given, or trained on the training part."""
        if network is not None:
            model = network_to_module(network).to(self.device)
            base = _Base(network_fingerprint(network), model, Masks.from_nonzeros(model))
        else:
            ctx = self.context(PruneConfig(), "auto-dense", {}, finetune=False)
            model, masks = self.train("dense", ctx, "dense")
            base = _Base(ctx.run.hash, model, masks, ctx)
        self.bases[(DENSE, 0.0)] = base
        return base

    def gmp_base(self, sparsity: float) -> _Base:
        ctx = self.context(PruneConfig("gmp", sparsity), "auto-gmp", {}, finetune=False)
        model, masks = self.train(f"gmp {sparsity:g}", ctx, "gmp")
        return _Base(ctx.run.hash, model, masks, ctx)

    def imp_chain(self, dense: _Base) -> list[float]:
        """Train IMP's chain to the largest sparsity; its levels at or above the smallest become bases.

        Returns:
            The sparsities of the levels kept (IMP's candidates).
        """
        target, fraction = max(self.space.sparsities), self.space.imp_fraction
        ctx = self.context(PruneConfig("imp", target, imp_fraction=fraction), "auto-imp", {}, finetune=False)
        if dense.ctx is not None and dense.ctx.run.done("train") and not ctx.run.done("level-0"):
            ctx.run.save("level-0", dense.ctx.run.load("train"))  # the same training, seed and masks
        self.train("imp chain", ctx, "imp")
        size = Masks.dense(ctx.new_model()).size()
        kept = []
        for level, density in enumerate(imp_densities(target, fraction), 1):
            count = round(density * size)
            sparsity = 1.0 - count / size
            if sparsity >= min(self.space.sparsities) - 1e-9:
                step = f"level-{level}-{count}"  # the name run_imp gives a level (prunemip.pruning.imp)
                checkpoint = ctx.run.load(step)
                model = ctx.new_model()
                model.load_state_dict(checkpoint.model)
                masks = Masks.from_state(checkpoint.masks)
                masks.move_to(self.device)
                self.bases[("imp", sparsity)] = _Base(f"{ctx.run.hash}/{step}", model, masks, ctx)
                kept.append(sparsity)
        return kept

    def base(self, spec: Candidate) -> _Base:
        if spec.method in POST_TRAINING:
            return self.bases[(DENSE, 0.0)]
        key = (spec.method, spec.sparsity)
        if key not in self.bases:
            self.bases[key] = self.gmp_base(spec.sparsity)
        return self.bases[key]

    def start(self, spec: Candidate) -> _Candidate:
        """The candidate's run, pruned from its base (magnitude and neuron pruning prune here)."""
        base = self.base(spec)
        prune = PruneConfig(
            method=spec.method,
            sparsity=spec.sparsity,
            finetune_epochs=self.config.prune.finetune_epochs,
            rs_weight=spec.rs_weight,
            rs_bounds=self.space.rs_bounds,
            imp_fraction=self.space.imp_fraction,
            **self.rs_balls,
        )
        post_training = spec.method in POST_TRAINING
        prune = prune.for_trained_model() if post_training else prune
        extra = {"base": base.key, "sparsity": spec.sparsity}
        ctx = self.context(prune, f"auto-{spec.method}", extra, finetune=True)
        model, masks = copy.deepcopy(base.model), base.masks.copy()
        if post_training:
            masks = ctx.prune_step("prune", model, lambda: one_shot(ctx, model, masks))
        return _Candidate(spec, ctx, model, masks)

    def finetune(self, candidate: _Candidate, epochs: int) -> None:
        """Fine-tune ``candidate`` on from its last round to ``epochs`` epochs (constant learning rate)."""
        if epochs <= candidate.epochs:
            return
        per_epoch = steps_per_epoch(len(self.data.train), self.config.train.batch_size)
        options = TrainOptions(phase=1, start_step=candidate.epochs * per_epoch)
        self.feedback.training = self.feedback.task(f"  fine-tuning {candidate.spec.label}", epochs)
        try:
            step = f"finetune-{epochs}"
            candidate.masks = candidate.ctx.fit(step, candidate.model, candidate.masks, options, epochs)
        finally:
            self.feedback.done(self.feedback.training)
            self.feedback.training = None
        candidate.epochs = epochs

    def evaluate(
        self,
        spec: Candidate,
        round_index: int,
        epochs: int,
        model: nn.Module,
        masks: Masks,
        ctx: Context | None,
    ) -> tuple[Evaluation, Network]:
        """Validation accuracy and MIP-cost proxy of ``model``; its network is saved in its run."""
        hits = correct(model, self.data.val)
        score = hit_rate(hits)
        if spec.method == DENSE:
            self.dense_correct = hits
        margin = paired_margin(self.dense_correct, hits, self.space.confidence)
        config = ctx.config if ctx is not None else self.config
        metadata = training_metadata(
            self.data.train,
            config.train,
            method=spec.method,
            hparams=config.prune.hparams(),
            target_sparsity=spec.sparsity,
            sparsity=masks.sparsity,
            architecture=self.widths,
            finetune_epochs=epochs,
            val_accuracy=score,
            val_provenance=self.data.val.provenance,
            **({} if ctx is None else {"config_hash": ctx.run.hash, "run_dir": str(ctx.run.path)}),
        )
        network = export_network(model, masks, self.data.val.input_spec(), metadata)
        features = cost_features(network, self.points, self.balls)
        proxy = features.value(self.space.proxy)
        evaluation = Evaluation(spec, round_index, epochs, score, masks.sparsity, features, proxy, margin)
        if ctx is not None:
            save_network(network, ctx.run.path / f"network-finetune-{epochs}.npz")
        loss = evaluation.loss(self.dense_accuracy) if spec.method != DENSE else 0.0
        self.feedback.line(
            f"{spec.label:<28} {epochs:>3} epochs: validation {score:.4f} "
            f"({-loss:+.2f} points, margin {margin:.2f}), unstable {features.unstable:.1f}, "
            f"nnz {features.nnz}, proxy {proxy:.4g}"
        )
        return evaluation, network

    def rounds(self, pending: list[_Candidate], rounds: list[int]) -> None:
        """Successive halving: fine-tune and evaluate the survivors of each round."""
        for index, epochs in enumerate(rounds):
            task = self.feedback.task(f"round {index + 1}/{len(rounds)}: {epochs} epochs", len(pending))
            for candidate in pending:
                self.finetune(candidate, epochs)
                candidate.evaluation, candidate.network = self.evaluate(
                    candidate.spec, index, epochs, candidate.model, candidate.masks, candidate.ctx
                )
                self.feedback.advance(task)
            self.feedback.done(task)
            if index == len(rounds) - 1:
                return
            slack = promise_slack(self.budget, index, len(rounds))
            evaluations = [c.evaluation for c in pending if c.evaluation is not None]
            kept = survivors(evaluations, self.dense_accuracy, self.budget, slack, self.space.eta)
            promoted = {id(e) for e in kept}
            pending[:] = [c for c in pending if id(c.evaluation) in promoted]
            self.feedback.line(f"round {index + 1}: {len(pending)} candidates go on")


def _checked_balls(balls: Sequence[Ball]) -> tuple[Ball, ...]:
    out = tuple((str(norm), float(radius)) for norm, radius in balls)
    if not out or any(norm not in BALL_NORMS or not radius > 0 for norm, radius in out):
        raise PrunemipError(f"the search's balls must be (linf or l1, radius > 0) pairs, got {list(balls)}")
    return out


def search(
    config: RunConfig,
    budget: float,
    runs_dir: str | Path = "runs",
    *,
    space: SearchSpace | None = None,
    balls: Sequence[Ball] = DEFAULT_BALLS,
    dense: Network | None = None,
    data: SearchData | None = None,
    console: Console | None = None,
) -> SearchResult:
    """The candidate of least MIP-cost proxy within ``budget`` points of dense validation accuracy.

    Args:
        config: the dataset, architecture and training of the dense model (and of GMP and
            IMP); ``config.prune.finetune_epochs`` is the last round's fine-tuning epochs. The
            pruning method in it is ignored.
        budget: the validation accuracy the chosen network may lose against dense, in points.
        runs_dir: where the content-keyed run directories go.
        space: the candidates and the search's settings (default :class:`SearchSpace`).
        balls: the input balls ``(norm, radius)`` of the proxy and of the RS loss.
        dense: a trained dense network to start from (``prunemip prune``): then only the
            families that prune a trained model are searched and its widths replace
            ``config.hidden``.
        data: the training and validation parts (default: loaded from ``config``).
        console: where progress and one line per evaluated candidate go (default: silent).

    Returns:
        Every candidate's last evaluation, the choice and its network; the table and plot of
        the candidates are written into ``result.directory``.

    Raises:
        PrunemipError: for a bad budget, balls or space, or a network that does not fit the data.
    """
    started = time.perf_counter()
    budget = check_budget(budget)
    balls = _checked_balls(balls)
    space = space or SearchSpace()
    if dense is not None:
        space = space.for_trained_model()
        config = replace(config, hidden=tuple(dense.widths[1:-1]))
    data = data or SearchData.load(config, space.val_fraction)
    n_inputs, n_classes = data.train.flat().shape[1], len(data.train.classes)
    if dense is not None and (dense.n_inputs, dense.n_outputs) != (n_inputs, n_classes):
        raise PrunemipError(
            f"the network maps {dense.n_inputs} inputs to {dense.n_outputs} classes, which does not fit "
            f"{config.dataset} ({n_inputs} inputs, {n_classes} classes)"
        )
    feedback = _Feedback(console)
    state = _Search(config, budget, space, balls, data, Path(runs_dir), feedback)
    rounds = round_epochs(config.prune.finetune_epochs, space.eta)
    with feedback.live():
        base = state.dense_base(dense)
        dense_evaluation, dense_network = state.evaluate(
            Candidate(DENSE), 0, 0, base.model, base.masks, base.ctx
        )
        state.dense_accuracy = dense_evaluation.accuracy
        imp_sparsities = state.imp_chain(base) if "imp" in space.families else []
        pending = [state.start(spec) for spec in candidates(space, imp_sparsities)]
        everyone = list(pending)
        feedback.line(
            f"{len(everyone)} candidates, rounds of {', '.join(map(str, rounds))} fine-tuning epochs"
        )
        state.rounds(pending, rounds)
    finished = [c for c in everyone if c.evaluation is not None and c.network is not None]
    evaluations = [dense_evaluation, *(c.evaluation for c in finished)]
    networks = [dense_network, *(c.network for c in finished)]
    chosen = choose(evaluations, dense_evaluation.accuracy, budget)
    network = networks[next(i for i, e in enumerate(evaluations) if e is chosen)]
    key = {"base": base.key, "budget": budget, "balls": balls, "space": asdict(space), "rounds": rounds}
    directory = RunDir(runs_dir, key, "auto-search").path
    result = SearchResult(
        budget,
        space,
        balls,
        rounds,
        dense_evaluation,
        evaluations,
        networks,
        chosen,
        network,
        directory,
        [step for ctx in state.contexts for step in ctx.trained_steps],
    )
    result.network = network.with_metadata(auto_search=result.record())
    result.seconds = time.perf_counter() - started
    write_candidates(result, directory / "candidates")
    return result
