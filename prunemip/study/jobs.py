"""The jobs of a study, each keyed by a hash of everything that determines its result.

A model job trains (and prunes) one network; a solve job attacks one test image of one
model under one perturbation. Keys are content addresses: the same configuration gives
the same key on any machine, so a re-run recognises finished jobs in the results file
and a changed setting makes a new job rather than silently reusing an old answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from prunemip.keys import content_key
from prunemip.study.config import Perturbation, StudyConfig, TrainingSpec, architecture_name

DENSE = "dense"


def method_label(record: dict[str, Any]) -> str:
    """The method's name, with its options when it has any: ``magnitude [rs_weight=0.001]``.

    Args:
        record: a model or solve record (its ``method`` and ``options``).

    Returns:
        The label.
    """
    options = record.get("options") or {}
    if not options:
        return str(record["method"])
    text = (
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in sorted(options.items())
    )
    return f"{record['method']} [{', '.join(text)}]"


@dataclass(frozen=True)
class ModelJob:
    """Train one network: the dense baseline, or a pruned one started from it."""

    dataset: str
    data_dir: str | None
    split_seed: int
    hidden: tuple[int, ...]
    method: str
    sparsity: float
    options: tuple[tuple[str, Any], ...]
    training: TrainingSpec
    seed: int

    @property
    def key(self) -> str:
        """Hash of what determines the trained network: not the study's list of seeds (the
        job has its own ``seed``), nor, for the dense baseline, the fine-tuning epochs it never
        runs; so adding a seed or changing the fine-tuning keeps the finished dense jobs."""
        training = {name: value for name, value in asdict(self.training).items() if name != "seeds"}
        if self.is_dense:
            del training["finetune_epochs"]
        return content_key({"kind": "model", **asdict(self), "training": training})

    @property
    def is_dense(self) -> bool:
        return self.method == DENSE

    @property
    def architecture(self) -> str:
        return architecture_name(self.hidden)

    def dense_job(self) -> ModelJob:
        """The dense model this one is pruned from (itself when dense)."""
        return ModelJob(
            self.dataset,
            self.data_dir,
            self.split_seed,
            self.hidden,
            DENSE,
            0.0,
            (),
            self.training,
            self.seed,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "method": self.method,
            "sparsity": self.sparsity,
            "seed": self.seed,
            "options": dict(self.options),
        }

    @property
    def label(self) -> str:
        """Architecture, method (with options), sparsity and seed: ``2x200 magnitude 90% seed 0``."""
        sparsity = "" if self.is_dense else f" {self.sparsity:.0%}"
        return f"{self.architecture} {method_label(self.describe())}{sparsity} seed {self.seed}"


@dataclass(frozen=True)
class SolveJob:
    """Attack one image of one model; ``surrogate`` solves the pruned MIP and checks on the dense net."""

    model_key: str
    dense_key: str
    image: int
    perturbation: Perturbation
    target: str
    mode: str
    time_limit: float
    bounds: str
    solver_seed: int
    surrogate: bool = False
    gradient_attack: bool = True

    @property
    def key(self) -> str:
        return content_key({"kind": "solve", **asdict(self)})


def model_jobs(config: StudyConfig) -> list[ModelJob]:
    """Dense baselines first, then every (method, sparsity), for each architecture and seed.

    Args:
        config: the study.

    Returns:
        The model jobs, without duplicates, dense ones before the models pruned from them.
    """
    jobs = []
    for hidden in config.architectures:
        for seed in config.training.seeds:
            dense = ModelJob(
                config.dataset,
                config.data_dir,
                config.split_seed,
                hidden,
                DENSE,
                0.0,
                (),
                config.training,
                seed,
            )
            jobs.append(dense)
            for method in config.methods:
                options = tuple(sorted(method.options.items()))
                for sparsity in method.sparsities:
                    jobs.append(
                        ModelJob(
                            config.dataset,
                            config.data_dir,
                            config.split_seed,
                            hidden,
                            method.name,
                            sparsity,
                            options,
                            config.training,
                            seed,
                        )
                    )
    return list(dict.fromkeys(jobs))


def solve_jobs(config: StudyConfig, model: ModelJob) -> list[SolveJob]:
    """Every attack of ``model``: images × perturbations × solver seeds (plus surrogate runs).

    Args:
        config: the study (its ``attack`` section).
        model: the model attacked.

    Returns:
        The solve jobs; ``image`` indexes the first ``attack.images`` test images.
    """
    attack = config.attack
    kinds = [False, True] if attack.surrogate and not model.is_dense else [False]
    return [
        SolveJob(
            model.key,
            model.dense_job().key,
            image,
            perturbation,
            attack.target,
            attack.mode,
            attack.time_limit,
            attack.bounds,
            solver_seed,
            surrogate,
            attack.gradient_attack,
        )
        for image in range(attack.images)
        for perturbation in attack.perturbations
        for solver_seed in attack.solver_seeds
        for surrogate in kinds
    ]


def job_keys(config: StudyConfig) -> list[str]:
    """The key of every job of ``config``: its model jobs, then each model's solve jobs.

    Args:
        config: the study.

    Returns:
        The keys, as the results file records them.
    """
    models = model_jobs(config)
    return [model.key for model in models] + [
        job.key for model in models for job in solve_jobs(config, model)
    ]
