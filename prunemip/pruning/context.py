"""What a method runner works with: the run's config, data, run directory, device and feedback.

A :class:`Context` is handed to every runner of :mod:`prunemip.pruning.methods` by the
pipeline (:mod:`prunemip.pruning.pipeline`). Its :meth:`~Context.fit` and
:meth:`~Context.prune_step` are the resumable steps of a run: each finished step is saved
in the :class:`~prunemip.pruning.runs.RunDir` and loaded instead of redone next time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from prunemip.data import Dataset
from prunemip.pruning.config import RunConfig
from prunemip.pruning.freezing import freeze_masks
from prunemip.pruning.masks import Masks
from prunemip.pruning.regularizers import Regularizer
from prunemip.pruning.runs import Checkpoint, RunDir
from prunemip.pruning.training import TrainOptions, accuracy, build_mlp, steps_per_epoch, train

Log = Callable[[str], None]
StepEpochLog = Callable[[str, dict[str, float]], None]


def quiet(message: str) -> None:
    """Discard a log line (the default :data:`Log`).

    Args:
        message: the line, ignored.
    """


@dataclass
class Context:
    """A run in progress: config, data, run directory, device, widths and feedback.

    ``trained_steps`` lists the steps trained (not loaded) by this call; ``notes`` collects
    what the steps recorded (``accuracy_pruned``).
    """

    config: RunConfig
    train_data: Dataset
    test_data: Dataset
    run: RunDir
    device: torch.device
    widths: list[int]
    log: Log = quiet
    on_epoch: StepEpochLog | None = None
    progress: bool = False
    trained_steps: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.train.seed

    def new_model(self, seed: int | None = None) -> nn.Sequential:
        """A freshly initialised MLP of the run's widths, on the run's device.

        Args:
            seed: the initialisation seed (default: the run's).

        Returns:
            The model.
        """
        model = build_mlp(
            self.widths[0], self.widths[1:-1], self.widths[-1], self.seed if seed is None else seed
        )
        return model.to(self.device)

    def dense_masks(self, model: nn.Module) -> Masks:
        """All-ones masks for ``model``, the output layer prunable as the run configures.

        Args:
            model: an MLP of the run's widths.

        Returns:
            Masks keeping every weight and bias.
        """
        return Masks.dense(model, self.config.prune.prune_output)

    def total_steps(self) -> int:
        train_config = self.config.train
        return train_config.epochs * steps_per_epoch(len(self.train_data), train_config.batch_size)

    def accuracy(self, model: nn.Module) -> float:
        """Test-set accuracy of ``model``.

        Args:
            model: an MLP of the run's widths.

        Returns:
            The accuracy on the run's test data, in [0, 1].
        """
        return accuracy(model, self.test_data)

    def freeze(self, model: nn.Module, masks: Masks) -> Masks:
        """``masks`` with the configured frozen entries (``model`` at initialisation, pruned).

        Args:
            model: the model at initialisation, pruned by ``masks``.
            masks: the masks in force.

        Returns:
            ``masks`` itself when nothing is to be frozen, else a copy with frozen entries.

        Raises:
            PrunemipError: when the frozen layers exceed the freeze fraction.
        """
        prune = self.config.prune
        if not prune.freezes:
            return masks
        masks = freeze_masks(prune, model, masks, self.train_data, self.seed)
        frozen = sum(count["frozen"] for count in masks.parameter_counts())
        self.log(f"froze {frozen} parameters at their initial values")
        return masks

    def fit(
        self,
        step: str,
        model: nn.Module,
        masks: Masks,
        options: TrainOptions | None = None,
        epochs: int | None = None,
    ) -> Masks:
        """Train (or load the finished step) and return the masks in force at its end.

        Args:
            step: the step's name in the run directory.
            model: the model, trained in place.
            masks: the masks in force.
            options: the steps, phase and callbacks of this step; the context adds the
                configured regularisers, the test-set evaluation and its feedback.
            epochs: the step's epochs (default: the run's).

        Returns:
            The masks in force at the end of the step.
        """
        if self.run.done(step):
            return self._restore(step, model)
        options = options or TrainOptions()
        train_config = self.config.train if epochs is None else replace(self.config.train, epochs=epochs)
        prune = self.config.prune
        callbacks = list(options.callbacks)
        if prune.l1 or prune.rs_weight:
            spec = self.test_data.input_spec()
            box = (float(spec.lower.min()), float(spec.upper.max()))
            callbacks.append(Regularizer(prune.l1, prune.rs_weight, prune.rs_balls, box, prune.rs_bounds))
        self.log(f"step {step}: training")
        on_epoch = self.on_epoch
        options = replace(
            options,
            callbacks=callbacks,
            evaluate=self.test_data,
            on_epoch=None if on_epoch is None else (lambda row: on_epoch(step, row)),
            progress=self.progress,
            description=step,
        )
        history = train(model, self.train_data, train_config, masks, options)
        masks.check()
        self.run.save(step, Checkpoint(model.state_dict(), masks.state(), history))
        self.trained_steps.append(step)
        return masks

    def prune_step(self, step: str, model: nn.Module, compute: Callable[[], Masks]) -> Masks:
        """Compute masks once (or load them), apply them and note the pruned accuracy.

        Args:
            step: the step's name in the run directory.
            model: the model, pruned in place (or loaded from the finished step).
            compute: makes the new masks (called only when the step is not done yet).

        Returns:
            The masks in force after the step.
        """
        if self.run.done(step):
            return self._restore(step, model)
        masks = compute()
        masks.apply(model)
        notes = {"accuracy_pruned": self.accuracy(model)}
        self.log(f"step {step}: sparsity {masks.sparsity:.4f}, accuracy {notes['accuracy_pruned']:.4f}")
        self.run.save(step, Checkpoint(model.state_dict(), masks.state(), notes=notes))
        self.notes.update(notes)
        return masks

    def _restore(self, step: str, model: nn.Module) -> Masks:
        checkpoint = self.run.load(step)
        model.load_state_dict(checkpoint.model)
        masks = Masks.from_state(checkpoint.masks)
        masks.move_to(self.device)
        self.notes.update(checkpoint.notes)
        self.log(f"step {step}: done earlier, loaded {self.run.step_file(step)}")
        return masks
