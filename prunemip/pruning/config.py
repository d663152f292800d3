"""Hyper-parameters of a training run and of its pruning method (torch-free).

:class:`TrainConfig` drives the training loop, :class:`PruneConfig` the method,
:class:`RunConfig` bundles them with the data and the architecture; its
:meth:`~RunConfig.key` is what names the run directory (open_lth's ``Desc``:
the hash of everything that determines the result).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from prunemip.devices import DEVICES
from prunemip.errors import PrunemipError
from prunemip.pruning.registry import (
    ALLOCATIONS,
    FREEZE_FAMILIES,
    METHODS,
    MethodSpec,
    freeze_spec,
    method_spec,
)

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
#: How the RS loss bounds its neurons (:mod:`prunemip.pruning.regularizers`).
RS_BOUNDS: tuple[str, ...] = ("ia", "crown")
SCHEDULES: tuple[str, ...] = ("none", "cosine", "step")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PrunemipError(message)


def parse_arch(text: str) -> tuple[int, ...]:
    """Hidden widths from ``"100,100"`` (commas or spaces) or ``"2x100"`` (depth x width).

    Args:
        text: the architecture as typed on the command line.

    Returns:
        The hidden layers' widths, input to output.

    Raises:
        PrunemipError: when ``text`` holds no positive widths.
    """
    spec = text.strip().lower()
    repeated = re.fullmatch(r"(\d+)\s*x\s*(\d+)", spec)
    try:
        widths = (
            (int(repeated.group(2)),) * int(repeated.group(1))
            if repeated
            else tuple(int(part) for part in spec.replace(",", " ").split())
        )
    except ValueError:
        widths = ()
    if not widths or any(width <= 0 for width in widths):
        raise PrunemipError(
            f"cannot read architecture {text!r}: give positive hidden widths such as 100,100 or 2x100"
        )
    return widths


def parse_layers(text: str) -> tuple[int, ...]:
    """Linear-layer numbers (from 1) from ``"1,2"`` (commas or spaces), sorted and unique.

    Args:
        text: the layer numbers as typed on the command line.

    Returns:
        The numbers, ascending.

    Raises:
        PrunemipError: when ``text`` holds no numbers, or one below 1.
    """
    try:
        layers = tuple(sorted({int(part) for part in text.replace(",", " ").split()}))
    except ValueError:
        layers = ()
    if not layers or layers[0] < 1:
        raise PrunemipError(f"cannot read layers {text!r}: give linear-layer numbers from 1, such as 1,2")
    return layers


@dataclass(frozen=True)
class TrainConfig:
    """One training phase: optimizer, learning-rate schedule, batches, epochs, seed, device.

    ``schedule``: ``none`` (constant), ``cosine`` (lr·½(1 + cos(π t/T)) per step) or
    ``step`` (×``step_gamma`` at each fraction of training in ``step_milestones``).
    ``weight_decay`` λ is L2 on the gradient (g + λw) for ``sgd`` and ``adam``, and
    decoupled (w ← w·(1 − ηλ) before the step; Loshchilov & Hutter, ICLR 2019) for
    ``adamw``; either way it acts only on trainable entries. ``seed`` fixes the order of
    the mini-batches.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    step_gamma: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        _check(self.batch_size > 0, f"batch size must be > 0, got {self.batch_size}")
        _check(self.lr > 0 and math.isfinite(self.lr), f"learning rate must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.momentum < 1, f"momentum must lie in [0, 1), got {self.momentum}")
        _check(
            self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}"
        )
        _check(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        _check(all(0 < m < 1 for m in self.step_milestones), "step milestones must be fractions in (0, 1)")
        _check(self.device in DEVICES, f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class PruneConfig:
    """The pruning method and its hyper-parameters (defaults from reference/pruning.md).

    ``sparsity`` is the fraction of prunable weights removed (all hidden layers, plus the
    output layer when ``prune_output``). ``l1`` and ``rs_weight`` add the MIP-friendly
    regularisers to any method; the RS loss has one term per input ball: the L∞ ball of
    radius ``rs_eps`` (0: none) and the L1 ball of radius ``rs_l1`` (0, the default: none),
    bounded by ``rs_bounds``: ``ia`` (interval arithmetic, Xiao et al.) or ``crown`` (the
    linear relaxation, which keeps deep layers' bounds informative).

    Freezing (:mod:`prunemip.pruning.freezing`) keeps weights at their initial values:
    ``freeze`` chooses ``freeze_fraction`` of the prunable weights among those the
    pruning mask keeps, and ``freeze_layers`` (numbered from 1) freezes whole linear
    layers, weights and bias. Pruned plus frozen may not exceed all prunable weights.
    """

    method: str = "dense"
    sparsity: float = 0.0
    allocation: str | None = None
    prune_output: bool = False
    finetune_epochs: int = 5
    imp_fraction: float = 0.2
    imp_rounds: int | None = None
    rewind_iteration: int = 0
    drop_fraction: float = 0.3
    update_interval: int = 100
    dst_end: float = 0.75
    gmp_begin: float = 0.1
    gmp_end: float = 0.6
    group_lasso: float = 0.3
    synflow_iterations: int = 100
    grasp_temperature: float = 200.0
    score_per_class: int = 10
    l1: float = 0.0
    rs_weight: float = 0.0
    rs_eps: float = 0.1
    rs_l1: float = 0.0
    rs_bounds: str = "ia"
    freeze: str | None = None
    freeze_fraction: float = 0.0
    freeze_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        spec = method_spec(self.method)
        _check(0.0 <= self.sparsity < 1.0, f"sparsity must lie in [0, 1), got {self.sparsity}")
        _check(
            self.method != "dense" or self.sparsity == 0.0,
            "method dense does not prune: drop --sparsity or choose a pruning method",
        )
        if self.allocation is not None:
            _check(
                self.allocation in ALLOCATIONS,
                f"unknown allocation {self.allocation!r}; choose one of {', '.join(ALLOCATIONS)}",
            )
            _check(
                spec.default_allocation is not None,
                f"method {self.method} fixes its own allocation; drop --allocation",
            )
        _check(self.finetune_epochs >= 0, "fine-tuning epochs must be >= 0")
        _check(0 < self.imp_fraction < 1, f"IMP fraction must lie in (0, 1), got {self.imp_fraction}")
        _check(self.imp_rounds is None or self.imp_rounds >= 1, "IMP rounds must be >= 1")
        _check(self.rewind_iteration >= 0, "rewind iteration must be >= 0")
        _check(0 <= self.drop_fraction < 1, f"drop fraction must lie in [0, 1), got {self.drop_fraction}")
        _check(self.update_interval >= 1, "update interval must be >= 1 step")
        _check(0 < self.dst_end <= 1, "DST end must be a fraction of training in (0, 1]")
        _check(0 <= self.gmp_begin < self.gmp_end <= 1, "GMP needs 0 <= begin < end <= 1 (fractions)")
        _check(self.group_lasso >= 0, "group lasso strength must be >= 0")
        _check(self.synflow_iterations >= 1, "SynFlow needs at least one iteration")
        _check(self.grasp_temperature > 0, "GraSP temperature must be > 0")
        _check(self.score_per_class >= 1, "scoring needs at least one sample per class")
        _check(self.l1 >= 0 and self.rs_weight >= 0, "regulariser weights must be >= 0")
        _check(self.rs_eps >= 0 and self.rs_l1 >= 0, "the RS balls' radii must be >= 0")
        _check(
            not self.rs_weight or bool(self.rs_balls),
            "the RS loss needs an input ball: give --rs-eps (L∞) or --rs-l1 (L1) a radius > 0",
        )
        _check(
            self.rs_bounds in RS_BOUNDS,
            f"unknown RS bounds {self.rs_bounds!r}; choose one of {', '.join(RS_BOUNDS)}",
        )
        self._check_freezing(spec)

    def _check_freezing(self, spec: MethodSpec) -> None:
        if self.freeze is None:
            _check(
                self.freeze_fraction == 0.0,
                "a freeze fraction needs a freezing method: add --freeze random or --freeze snip",
            )
        else:
            freeze_spec(self.freeze)
            _check(
                0.0 < self.freeze_fraction <= 1.0,
                f"freeze fraction must lie in (0, 1] with --freeze {self.freeze}, got {self.freeze_fraction}",
            )
        total = self.sparsity + self.freeze_fraction
        _check(
            total <= 1.0 + 1e-12,
            f"pruned ({self.sparsity:g}) and frozen ({self.freeze_fraction:g}) fractions sum to "
            f"{total:g} > 1; lower --sparsity or --freeze-fraction",
        )
        layers = self.freeze_layers
        _check(
            list(layers) == sorted(set(layers)) and all(layer >= 1 for layer in layers),
            "frozen layers are numbered from 1, each listed once in increasing order",
        )
        _check(
            not self.freezes or spec.family in FREEZE_FAMILIES,
            f"method {self.method} changes or rewinds its weights during training, so nothing stays at its "
            "initial value; freeze with dense or a pruning-at-initialisation method "
            f"({', '.join(n for n, s in METHODS.items() if s.family == 'pai')})",
        )

    @property
    def freezes(self) -> bool:
        """Whether any weight is frozen."""
        return self.freeze is not None or bool(self.freeze_layers)

    @property
    def rs_balls(self) -> tuple[tuple[str, float], ...]:
        """The RS loss's input balls, ``(norm, radius)``, radius 0 left out."""
        balls = (("linf", self.rs_eps), ("l1", self.rs_l1))
        return tuple((norm, radius) for norm, radius in balls if radius > 0)

    @property
    def spec(self) -> MethodSpec:
        return METHODS[self.method]

    @property
    def resolved_allocation(self) -> str | None:
        """The allocation in force: the given one, else the method's default."""
        return self.allocation or self.spec.default_allocation

    def for_trained_model(self) -> PruneConfig:
        """This config as applied to a trained model: the method's trained-model allocation
        (``MethodSpec.trained_allocation``) unless an allocation was given."""
        trained = self.spec.trained_allocation
        return self if self.allocation is not None or trained is None else replace(self, allocation=trained)

    def hparams(self) -> dict[str, Any]:
        """The fields this method reads, the regularisers and any freezing (what its metadata records)."""
        values = {name: getattr(self, name) for name in self.spec.hparams}
        if "allocation" in values:
            values["allocation"] = self.resolved_allocation
        values["l1"] = self.l1
        values["rs_weight"] = self.rs_weight
        if self.rs_weight:
            values["rs_eps"] = self.rs_eps
            if self.rs_l1:
                values["rs_l1"] = self.rs_l1
            if self.rs_bounds != "ia":
                values["rs_bounds"] = self.rs_bounds
        if self.freezes:
            values["freeze"] = self.freeze
            values["freeze_fraction"] = self.freeze_fraction
            values["freeze_layers"] = list(self.freeze_layers)
        return values

    def key_hparams(self) -> dict[str, Any]:
        """The hyper-parameters that name the run directory.

        IMP with a fixed fraction per round leaves out the target sparsity: its levels
        (1 − p)^r are the same for every target, so runs towards different targets share
        one directory and every level they have in common (levels are named by their
        kept-weight count, see :mod:`prunemip.pruning.imp`).
        """
        values = self.hparams()
        if self.spec.family == "imp" and self.imp_rounds is None:
            del values["sparsity"]
        return values


@dataclass(frozen=True)
class RunConfig:
    """Data (name, folder, split seed), architecture, training and pruning of one run."""

    dataset: str = "digits"
    hidden: tuple[int, ...] = (100, 100)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    data_dir: str | None = None
    data_seed: int = 0

    def __post_init__(self) -> None:
        _check(bool(self.hidden) and all(w > 0 for w in self.hidden), f"bad hidden widths {self.hidden}")
        n_layers, frozen = len(self.hidden) + 1, self.prune.freeze_layers
        if frozen:
            _check(
                frozen[-1] <= n_layers,
                f"cannot freeze layer {frozen[-1]}: the network has {n_layers} linear layers",
            )
            _check(len(frozen) < n_layers, "freezing every layer leaves nothing to train; drop a layer")

    def key(self) -> dict[str, Any]:
        """Everything that determines the run's result; its hash names the run directory.

        A method with ``run_as`` (the IMP controls) is keyed as that method: its steps are
        branches inside the same directory.
        """
        spec = self.prune.spec
        return {
            "dataset": self.dataset,
            "data_dir": self.data_dir,
            "data_seed": self.data_seed,
            "hidden": list(self.hidden),
            "train": {f.name: _plain(getattr(self.train, f.name)) for f in fields(self.train)},
            "method": spec.run_as or spec.name,
            "hparams": self.prune.key_hparams(),
        }

    def describe(self) -> dict[str, Any]:
        """The full configuration as plain JSON."""
        return {**self.key(), "method": self.prune.method, "prune": asdict(self.prune)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
