"""Calibrating the MIP-cost proxy against measured decide-mode solve times.

For a handful of networks (a search's candidates, say) the study's attack is solved on a few
validation images for each ball: decide mode, runner-up target, the study's bounds and time
limit (:func:`prunemip.study.tasks.solve_task`, the same measurement a study records). A
time-out is charged at the limit, and each network's time is the shifted geometric mean of
its solves (shift 1 s; Achterberg, *Constraint Integer Programming*, 2007). Each proxy form
of :mod:`prunemip.study.mip_cost` is scored by Spearman's rank correlation ρ between its
values and the measured times (Spearman, *The proof and measurement of association between
two things*, 1904): ρ = 1 when the form orders the networks exactly as their solve times do.
The form with the largest ρ ranks best.

Kept apart from :mod:`prunemip.study.mip_cost` because it runs the study's tasks, and the
tasks run the search, which reads the proxy.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from prunemip.data import Dataset
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.study.config import Perturbation
from prunemip.study.jobs import SolveJob
from prunemip.study.mip_cost import DEFAULT_PROXY, PROXY_FORMS, Ball, CostFeatures, cost_features
from prunemip.study.report import charged_time, shifted_geometric_mean
from prunemip.study.tasks import solve_task


@dataclass(frozen=True)
class CalibrationRow:
    """One network: its proxy features and its measured solve time."""

    name: str
    features: CostFeatures
    seconds: float  #: shifted geometric mean of the charged solve times
    timeouts: int
    solves: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "proxies": {form: self.features.value(form) for form in PROXY_FORMS}}


@dataclass(frozen=True)
class Calibration:
    """Each proxy form's Spearman ρ against the measured times, and the best form."""

    rows: tuple[CalibrationRow, ...]
    correlations: dict[str, float]
    best: str
    images: tuple[int, ...]  #: the validation images solved (rows of the validation part)
    time_limit: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "correlations": self.correlations,
            "images": list(self.images),
            "time_limit": self.time_limit,
            "rows": [row.to_dict() for row in self.rows],
        }


def rank_correlations(rows: Sequence[CalibrationRow]) -> dict[str, float]:
    """Spearman's ρ of every proxy form with the measured times (NaN when either is constant).

    Args:
        rows: the networks' features and measured times.

    Returns:
        Form → ρ.
    """
    times = [row.seconds for row in rows]
    correlations = {}
    for form in PROXY_FORMS:
        values = [row.features.value(form) for row in rows]
        constant = len(set(values)) < 2 or len(set(times)) < 2
        correlations[form] = math.nan if constant else float(spearmanr(values, times).statistic)
    return correlations


def _common_images(networks: Sequence[Network], data: Dataset, count: int) -> list[int]:
    """The first ``count`` images every network classifies correctly."""
    right = np.ones(len(data), dtype=bool)
    for network in networks:
        right &= np.asarray(network.predict(data.flat())) == data.labels
    return [int(i) for i in np.flatnonzero(right)[:count]]


def calibrate(
    networks: Mapping[str, Network],
    data: Dataset,
    balls: Sequence[Ball],
    *,
    images: int = 3,
    proxy_points: int = 5,
    time_limit: float = 60.0,
    bounds: str = "auto",
    solver_seed: int = 0,
    workers: int = 1,
    on_solve: Callable[[str, dict[str, Any]], None] | None = None,
) -> Calibration:
    """Measure decide-mode solve times of ``networks`` and rank every proxy form against them.

    Args:
        networks: name → network (at least three, to rank).
        data: the validation part: its first ``proxy_points`` images centre the proxy's balls
            (as in the search), and the first ``images`` that every network classifies
            correctly are attacked.
        balls: the perturbations ``(norm, radius)``.
        images: images attacked per network and ball.
        proxy_points: the proxy's points.
        time_limit: seconds per attack (a time-out is charged at it).
        bounds: the attack's bounds method.
        solver_seed: HiGHS's random seed.
        workers: solves run at once (processes; HiGHS uses one thread each).
        on_solve: sees ``(network name, solve record)`` as each solve finishes.

    Returns:
        The rows, the correlations and the form that ranks best.

    Raises:
        PrunemipError: with fewer than three networks or no image they all classify correctly.
    """
    if len(networks) < 3:
        raise PrunemipError("calibration needs at least three networks to rank")
    chosen = _common_images(list(networks.values()), data, images)
    if not chosen:
        raise PrunemipError("no validation image is classified correctly by every network")
    jobs = [
        (
            name,
            network,
            SolveJob(
                name,
                name,
                i,
                Perturbation(norm, radius),
                "runner-up",
                "decide",
                time_limit,
                bounds,
                solver_seed,
                gradient_attack=False,
            ),
        )
        for name, network in networks.items()
        for i in chosen
        for norm, radius in balls
    ]
    flat = data.flat()
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in networks}
    arguments = [(network, flat[job.image], int(data.labels[job.image]), job) for _, network, job in jobs]
    with contextlib.ExitStack() as stack:
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=context))
            outcomes = pool.map(solve_task, *zip(*arguments, strict=True))
        else:
            outcomes = (solve_task(*args) for args in arguments)
        for (name, _, _), outcome in zip(jobs, outcomes, strict=True):
            record = {**outcome, "time_limit": time_limit}
            records[name].append(record)
            if on_solve is not None:
                on_solve(name, record)
    points = flat[:proxy_points]
    rows = tuple(
        CalibrationRow(
            name,
            cost_features(network, points, balls),
            shifted_geometric_mean(charged_time(record) for record in records[name]),
            sum(record["status"] == "timeout" for record in records[name]),
            len(records[name]),
        )
        for name, network in networks.items()
    )
    correlations = rank_correlations(rows)
    ranked = {form: rho for form, rho in correlations.items() if not math.isnan(rho)}
    best = max(ranked, key=ranked.__getitem__) if ranked else DEFAULT_PROXY
    return Calibration(rows, correlations, best, tuple(chosen), time_limit)
