"""What the automatic search (:mod:`prunemip.study.auto`) tries, and how it promotes and chooses.

Torch-free, so a study config can be validated without loading torch.

Candidates: every (method family, sparsity, ReLU-stability weight) of a :class:`SearchSpace`.
Each is fine-tuned in rounds of successive halving (Jamieson & Talwalkar, *Non-stochastic
best arm identification and hyperparameter optimization*, AISTATS 2016): with a largest
budget of ``R`` fine-tuning epochs and a factor ``η``, round ``k`` of ``K + 1`` trains every
surviving candidate to ``r_k = max(1, round(R / η^(K−k)))`` epochs, ``K = ⌊log_η R⌋``, and only
the best ``⌈n/η⌉`` of the ``n`` evaluated go on (:func:`round_epochs`, :func:`survivors`).

"Best" serves the goal, the sparsest most stable network within the accuracy budget
``b`` points of the dense model's validation accuracy ``a_d``: a candidate with validation
accuracy ``a`` is *promising* in round ``k`` when ``100·(a_d − a) + m ≤ b + s_k``, with the
slack ``s_k = b·(K − k)/K`` shrinking to 0 by the last round (fine-tuning still recovers
accuracy in the early rounds) and the confidence margin ``m`` below.

The margin: the validation loss is an estimate, and the choice, the sparsest of many
candidates that pass, favours those whose estimate came out too low (measured on
Fashion-MNIST 2x200 without it: 0.63 points lost on validation, 2.0 on the test split
against the study's dense model). The loss of a candidate against dense on the same ``n``
validation images is a paired difference of proportions: with ``b`` images only dense
classifies correctly and ``c`` only the candidate, its standard error is
``√(b + c − (b − c)²/n) / n`` (the variance of the mean of the per-image differences, the
statistic of McNemar's test, *Psychometrika* 12, 1947), and ``m = z_q`` times it, in points,
with ``z_q`` the standard normal quantile of the search's ``confidence`` ``q``: a candidate
counts as within the budget when the one-sided upper confidence bound of its loss is
(``q = 0.5`` gives ``m = 0``, the bare estimate).

Promising candidates rank by the MIP-cost proxy, lowest first; the others follow, most
accurate first, so a round with few promising candidates goes on with those closest to the
budget. Early stopping on validation accuracy is this promotion rule: a candidate that falls
behind stops being fine-tuned.

The choice (:func:`choose`) is the evaluated candidate of least proxy among those within
the budget, each with the figures of its last round; the dense model is one of them (it
loses nothing), so there always is one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.pruning.config import RS_BOUNDS
from prunemip.study.mip_cost import DEFAULT_PROXY, Ball, CostFeatures, proxy_form

DENSE = "dense"
#: The method families searched: unstructured (magnitude on the trained dense model, GMP,
#: IMP) and neuron pruning. Magnitude and neuron pruning start from the dense model.
FAMILIES: tuple[str, ...] = ("magnitude", "gmp", "imp", "neuron-magnitude")
POST_TRAINING: tuple[str, ...] = ("magnitude", "neuron-magnitude")
STRUCTURED: tuple[str, ...] = ("neuron-magnitude",)


def _fraction(value: float, name: str, low_open: bool = True) -> None:
    low_ok = value > 0 if low_open else value >= 0
    if not (low_ok and value < 1):
        raise PrunemipError(f"search: {name} must lie in {'(0' if low_open else '[0'}, 1), got {value}")


@dataclass(frozen=True)
class SearchSpace:
    """The grid and the settings of the search; every field can be given in a study's options.

    ``sparsities`` apply to the unstructured families (IMP's candidates are the levels of one
    chain with ``imp_fraction`` per round, from the smallest to the largest of them),
    ``neuron_sparsities`` to neuron pruning. ``rs_weights`` are the ReLU-stability loss weights
    of the fine-tuning (bounded by ``rs_bounds`` over the proxy's balls). ``val_fraction`` of
    the training split is held out for validation, ``proxy_points`` of its images centre the
    proxy's balls, and ``proxy`` names its form (:data:`~prunemip.study.mip_cost.PROXY_FORMS`).
    """

    families: tuple[str, ...] = FAMILIES
    sparsities: tuple[float, ...] = (0.8, 0.9, 0.95)
    neuron_sparsities: tuple[float, ...] = (0.5, 0.7, 0.8)
    rs_weights: tuple[float, ...] = (0.0, 3e-4, 1e-3)
    rs_bounds: str = "ia"
    imp_fraction: float = 0.5
    eta: int = 3
    val_fraction: float = 0.1
    proxy_points: int = 5
    proxy: str = DEFAULT_PROXY
    #: the one-sided confidence that a chosen candidate's loss is within the budget (see the module)
    confidence: float = 0.95

    def __post_init__(self) -> None:
        unknown = [family for family in self.families if family not in FAMILIES]
        if not self.families or unknown:
            raise PrunemipError(
                f"search: families must be some of {', '.join(FAMILIES)}, got {self.families}"
            )
        for name in ("sparsities", "neuron_sparsities"):
            values = getattr(self, name)
            if not values:
                raise PrunemipError(f"search: {name} must not be empty")
            for value in values:
                _fraction(value, name)
        if not self.rs_weights or not all(math.isfinite(w) and w >= 0 for w in self.rs_weights):
            raise PrunemipError(f"search: rs_weights must be finite numbers >= 0, got {self.rs_weights}")
        if self.rs_bounds not in RS_BOUNDS:
            raise PrunemipError(
                f"search: rs_bounds is {self.rs_bounds!r}; choose one of {', '.join(RS_BOUNDS)}"
            )
        _fraction(self.imp_fraction, "imp_fraction")
        _fraction(self.val_fraction, "val_fraction")
        if self.eta < 2:
            raise PrunemipError(f"search: eta must be an integer >= 2, got {self.eta}")
        if self.proxy_points < 1:
            raise PrunemipError(f"search: proxy_points must be >= 1, got {self.proxy_points}")
        proxy_form(self.proxy)
        if not 0.5 <= self.confidence < 1.0:
            raise PrunemipError(f"search: confidence must lie in [0.5, 1), got {self.confidence}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SearchSpace:
        """The space with ``options`` replacing defaults (lists become tuples).

        Args:
            options: field names and values, as a study config's table gives them.

        Returns:
            The validated space.

        Raises:
            PrunemipError: for an unknown option, a value of the wrong kind or out of range.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in options.items():
            if name not in known:
                raise PrunemipError(f"search: unknown option {name!r}; known: {', '.join(known)}")
            default = known[name].default
            values[name] = tuple(value) if isinstance(value, (list, tuple)) else value
            if not _same_kind(values[name], default):
                raise PrunemipError(f"search: {name} must be like {default!r}, got {value!r}")
        return cls(**values)

    def for_trained_model(self) -> SearchSpace:
        """This space restricted to the families that prune a trained model (``prunemip prune``).

        Returns:
            The space with only magnitude and neuron pruning.

        Raises:
            PrunemipError: when none of its families prunes a trained model.
        """
        families = tuple(family for family in self.families if family in POST_TRAINING)
        if not families:
            raise PrunemipError(f"search: pruning a trained model needs one of {', '.join(POST_TRAINING)}")
        return replace(self, families=families)


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` has the kind of ``default`` (an int stands for a float, never a bool)."""
    if isinstance(default, tuple):
        return isinstance(value, tuple) and all(_same_kind(item, default[0]) for item in value)
    if isinstance(value, bool):
        return isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_budget(budget: float) -> float:
    """``budget`` as a float, if it is a finite number of points ``≥ 0``.

    Args:
        budget: the validation accuracy the search may lose against dense, in points.

    Returns:
        The budget.

    Raises:
        PrunemipError: for a negative, infinite or NaN budget.
    """
    value = float(budget)
    if not (math.isfinite(value) and value >= 0):
        raise PrunemipError(f"the accuracy budget must be a finite number of points >= 0, got {budget}")
    return value


@dataclass(frozen=True)
class Candidate:
    """A setting the search tries: method family, target sparsity, RS weight of its fine-tuning."""

    method: str
    sparsity: float = 0.0
    rs_weight: float = 0.0

    @property
    def label(self) -> str:
        """``magnitude 90% RS 0.0003``, or ``dense``."""
        if self.method == DENSE:
            return DENSE
        rs = f" RS {self.rs_weight:g}" if self.rs_weight else ""
        return f"{self.method} {100 * self.sparsity:.3g}%{rs}"


def candidates(space: SearchSpace, imp_sparsities: Sequence[float] = ()) -> list[Candidate]:
    """Every candidate of ``space``: family × sparsity × RS weight, in the space's order.

    Args:
        space: the search space.
        imp_sparsities: the sparsities of IMP's chain levels (IMP's candidates).

    Returns:
        The candidates (the dense model is not one: it is the reference).
    """
    grid = dict.fromkeys(space.families, space.sparsities)
    grid.update({family: space.neuron_sparsities for family in STRUCTURED if family in grid})
    if "imp" in grid:
        grid["imp"] = tuple(imp_sparsities)
    return [
        Candidate(family, sparsity, weight)
        for family in space.families
        for sparsity in grid[family]
        for weight in space.rs_weights
    ]


def round_epochs(max_epochs: int, eta: int) -> list[int]:
    """The fine-tuning epochs of each round: ``r_k = max(1, round(R / η^(K−k)))``, ``K = ⌊log_η R⌋``.

    Args:
        max_epochs: ``R``, the fine-tuning epochs of the last round (0: one round, no fine-tuning).
        eta: ``η``, the factor between rounds.

    Returns:
        The epochs of each round, increasing (duplicates dropped).
    """
    if max_epochs <= 0:
        return [0]
    last = math.floor(math.log(max_epochs) / math.log(eta) + 1e-9)
    return sorted({max(1, round(max_epochs / eta ** (last - k))) for k in range(last + 1)})


@dataclass(frozen=True)
class Evaluation:
    """A candidate after a round: fine-tuning epochs, validation accuracy, cost features, proxy,
    and the confidence margin of its loss (points, 0 for the dense model; see the module)."""

    candidate: Candidate
    round: int
    epochs: int
    accuracy: float
    sparsity: float  #: achieved, of the prunable layers
    features: CostFeatures
    proxy: float
    margin: float = 0.0

    def loss(self, dense_accuracy: float) -> float:
        """Validation accuracy lost against dense, in points.

        Args:
            dense_accuracy: the dense model's validation accuracy, in [0, 1].

        Returns:
            ``100·(dense_accuracy − accuracy)``.
        """
        return 100.0 * (dense_accuracy - self.accuracy)

    def within(self, dense_accuracy: float, budget: float, slack: float = 0.0) -> bool:
        """Whether its loss plus its margin is at most ``budget + slack`` points (up to rounding
        of the accuracies).

        Args:
            dense_accuracy: the dense model's validation accuracy.
            budget: the accuracy budget, in points.
            slack: extra points allowed (a round's promise slack).

        Returns:
            True within the budget.
        """
        return self.loss(dense_accuracy) + self.margin <= budget + slack + 1e-9


def paired_margin(dense_correct: np.ndarray, candidate_correct: np.ndarray, confidence: float) -> float:
    """``m = 100·z_q·√(b + c − (b − c)²/n) / n``: the confidence margin of a candidate's loss.

    Args:
        dense_correct: per validation image, whether the dense model classifies it correctly.
        candidate_correct: the same for the candidate.
        confidence: ``q``, in [0.5, 1).

    Returns:
        The margin in points (0 for no images or ``q = 0.5``).
    """
    n = dense_correct.size
    if n == 0:
        return 0.0
    b = float(np.count_nonzero(dense_correct & ~candidate_correct))
    c = float(np.count_nonzero(~dense_correct & candidate_correct))
    spread = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return 100.0 * NormalDist().inv_cdf(confidence) * spread


def promise_slack(budget: float, round_index: int, rounds: int) -> float:
    """``s_k = b·(K − k)/K``: the extra loss a promising candidate may have in round ``k`` of ``K + 1``.

    Args:
        budget: the accuracy budget ``b``, in points.
        round_index: ``k``, from 0.
        rounds: ``K + 1``, the number of rounds.

    Returns:
        The slack, in points (0 in the last round).
    """
    last = rounds - 1
    return 0.0 if last <= 0 else budget * (last - round_index) / last


def survivors(
    evaluations: Sequence[Evaluation], dense_accuracy: float, budget: float, slack: float, eta: int
) -> list[Evaluation]:
    """The ``⌈n/η⌉`` evaluations that go on: promising ones by proxy, then the rest by accuracy.

    Args:
        evaluations: the round's ``n`` evaluations.
        dense_accuracy: the dense model's validation accuracy.
        budget: the accuracy budget, in points.
        slack: the round's promise slack, in points.
        eta: ``η``.

    Returns:
        The survivors, best first.
    """

    def rank(evaluation: Evaluation) -> tuple[int, float, float]:
        if evaluation.within(dense_accuracy, budget, slack):
            return (0, evaluation.proxy, -evaluation.accuracy)
        return (1, -evaluation.accuracy, evaluation.proxy)

    return sorted(evaluations, key=rank)[: math.ceil(len(evaluations) / eta)]


def choose(evaluations: Sequence[Evaluation], dense_accuracy: float, budget: float) -> Evaluation:
    """The evaluation of least proxy among those within the budget (ties: the more accurate).

    Args:
        evaluations: each candidate's last evaluation, the dense model's among them.
        dense_accuracy: the dense model's validation accuracy.
        budget: the accuracy budget, in points.

    Returns:
        The chosen evaluation.

    Raises:
        PrunemipError: when none is within the budget (the dense model always is).
    """
    eligible = [e for e in evaluations if e.within(dense_accuracy, budget)]
    if not eligible:
        raise PrunemipError("no candidate is within the accuracy budget (the dense model should be)")
    return min(eligible, key=lambda e: (e.proxy, -e.accuracy))


@dataclass
class SearchResult:
    """The search's outcome: every candidate's last evaluation, the choice and its network."""

    budget: float
    space: SearchSpace
    balls: tuple[Ball, ...]
    rounds: list[int]
    dense: Evaluation
    evaluations: list[Evaluation]  #: the dense model's first, then each candidate's last
    networks: list[Network]  #: the network of each evaluation, in the same order
    chosen: Evaluation
    network: Network  #: the chosen network, ``metadata["auto_search"]`` holding :meth:`record`
    directory: Path  #: where the candidates' table and plot were written
    trained_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per candidate: setting, epochs, validation accuracy, loss, features, proxy.

        Returns:
            The rows, the dense model's first.
        """
        dense = self.dense.accuracy
        return [
            {
                "candidate": e.candidate.label,
                "method": e.candidate.method,
                "sparsity": e.candidate.sparsity,
                "rs_weight": e.candidate.rs_weight,
                "sparsity_achieved": e.sparsity,
                "round": e.round,
                "epochs": e.epochs,
                "val_accuracy": e.accuracy,
                "loss_points": e.loss(dense),
                "margin_points": e.margin,
                "within_budget": e.within(dense, self.budget),
                **e.features.to_dict(),
                "proxy": e.proxy,
                "chosen": e is self.chosen,
            }
            for e in self.evaluations
        ]

    def record(self) -> dict[str, Any]:
        """How the network was chosen, as the saved model's metadata records it.

        Returns:
            Budget, dense validation accuracy, proxy form, balls, rounds, the candidates and the choice.
        """
        return {
            "budget_points": self.budget,
            "dense_val_accuracy": self.dense.accuracy,
            "proxy": self.space.proxy,
            "balls": [list(ball) for ball in self.balls],
            "val_fraction": self.space.val_fraction,
            "rounds_epochs": self.rounds,
            "eta": self.space.eta,
            "confidence": self.space.confidence,
            "chosen": self.chosen.candidate.label,
            "candidates": self.rows(),
        }
