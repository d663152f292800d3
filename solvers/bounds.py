"""The progressive bounds pipeline: every bounds method of the registry, run cheapest first.

``compute_bounds(network, region, method)`` runs the stages cheapest first, as MIPVerify
does (Tjeng et al., ICLR 2019): interval arithmetic (``ia``), linear relaxation by
backward substitution (``linear``; CROWN/DeepPoly), LP-based tightening (``lp``;
:mod:`prunemip.solvers.obbt.lp`) and MIP-based tightening of the last hidden layers
(``mip``; :mod:`prunemip.solvers.obbt.mip`). Each stage only tightens, so every stage's
bounds are at least as tight as the previous one's. ``alpha`` (α-CROWN, Xu et al., ICLR
2021: the linear stage with optimised lower ReLU slopes) is an opt-in stage after
``linear``, not part of ``lp``, ``mip`` or ``auto``: on the benchmark nets it narrows the
bounds little for several times CROWN's time, and the LP stage reaches as far
(``experiments/benchmarks/bounds.py --part quality``; figures in
``experiments/benchmarks/README.md``). ``auto``, the default, is ``linear`` followed by the
LP stage only where it pays (:func:`lp_pays`), within a budget (:func:`auto_lp_budget`).

Adding a bounds method: its name and summary go in the registry
:mod:`prunemip.solvers.methods` (which the CLI's ``--bounds`` and a study's ``bounds`` read),
its stage (a :data:`Stage`) in a module of its own, and one line binding the two in
:data:`STAGES` below; ``tests/solvers/test_bounds_pipeline.py`` checks that :data:`STAGES` binds
exactly the registry's methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from prunemip.encoders.bounds.interval import NeuronBounds, interval_bounds
from prunemip.encoders.bounds.linear import alpha_bounds, linear_bounds
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.methods import BOUNDS_CHOICES, DEFAULT_BOUNDS
from prunemip.solvers.obbt.common import ObbtOptions
from prunemip.solvers.obbt.lp import lp_layers, lp_tighten
from prunemip.solvers.obbt.mip import mip_tighten

__all__ = [
    "AUTO_LP_BUDGET_FRACTION",
    "AUTO_LP_MAX_BUDGET",
    "AUTO_LP_MIN_UNSTABLE",
    "STAGES",
    "BoundsRun",
    "ObbtOptions",
    "Stage",
    "auto_lp_budget",
    "compute_bounds",
    "continue_bounds",
    "lp_pays",
]

#: ``auto`` runs the LP stage only when the linear bounds leave at least this many unstable
#: neurons in the hidden layers that LP can tighten (layers ≥ 1), ...
AUTO_LP_MIN_UNSTABLE = 30
#: ... with a budget of this fraction of the attack's time limit, at most AUTO_LP_MAX_BUDGET s.
AUTO_LP_BUDGET_FRACTION = 0.1
AUTO_LP_MAX_BUDGET = 30.0


def lp_pays(bounds: NeuronBounds) -> bool:
    """The ``auto`` rule: whether LP tightening is worth running after ``bounds``.

    Args:
        bounds: the linear bounds ``auto`` starts from.

    Returns:
        True when at least :data:`AUTO_LP_MIN_UNSTABLE` neurons the LP stage can tighten are
        unstable.
    """
    candidates = sum(int(np.count_nonzero(bounds.unstable(k))) for k in lp_layers(bounds))
    return candidates >= AUTO_LP_MIN_UNSTABLE


def auto_lp_budget(time_limit: float | None) -> float:
    """The ``auto`` LP budget.

    Args:
        time_limit: the attack's time limit in seconds (None or infinite: none).

    Returns:
        :data:`AUTO_LP_BUDGET_FRACTION` of ``time_limit``, at most :data:`AUTO_LP_MAX_BUDGET` s.
    """
    if time_limit is None or not math.isfinite(time_limit):
        return AUTO_LP_MAX_BUDGET
    return min(AUTO_LP_BUDGET_FRACTION * time_limit, AUTO_LP_MAX_BUDGET)


@dataclass(frozen=True)
class BoundsRun:
    """What every stage of one bounds computation may read."""

    network: Network
    region: InputRegion
    options: ObbtOptions | None = None  #: LP/MIP limits (None: :class:`ObbtOptions` defaults)
    time_limit: float | None = None  #: the attack's time limit, of which ``auto`` takes a share
    points: Sequence[np.ndarray] = ()  #: region points (e.g. attack points) that help skip LPs


#: A stage: ``stage(run, bounds)`` tightens ``bounds``, those of the method it runs after
#: (``None`` for the first stage, which starts from the region alone).
Stage = Callable[[BoundsRun, NeuronBounds | None], NeuronBounds]


def _interval(run: BoundsRun, _: NeuronBounds | None) -> NeuronBounds:
    return interval_bounds(run.network, run.region)


def _linear(run: BoundsRun, bounds: NeuronBounds | None) -> NeuronBounds:
    return linear_bounds(run.network, run.region, bounds)


def _alpha(run: BoundsRun, bounds: NeuronBounds | None) -> NeuronBounds:
    return alpha_bounds(run.network, run.region, bounds)


def _lp(run: BoundsRun, bounds: NeuronBounds | None) -> NeuronBounds:
    return lp_tighten(run.network, run.region, bounds, run.options, points=run.points)


def _mip(run: BoundsRun, bounds: NeuronBounds | None) -> NeuronBounds:
    return mip_tighten(run.network, run.region, bounds, run.options, points=run.points)


def _auto(run: BoundsRun, bounds: NeuronBounds | None) -> NeuronBounds:
    """LP tightening if :func:`lp_pays`, with :func:`auto_lp_budget` unless the options set one."""
    if not lp_pays(bounds):
        return bounds
    options = run.options or ObbtOptions()
    if not math.isfinite(options.budget):
        options = replace(options, budget=auto_lp_budget(run.time_limit))
    return lp_tighten(run.network, run.region, bounds, options, points=run.points)


#: Every method of the registry: the method it runs after (None: the first) and its stage.
STAGES: dict[str, tuple[str | None, Stage]] = {
    "ia": (None, _interval),
    "linear": ("ia", _linear),
    "alpha": ("linear", _alpha),
    "lp": ("linear", _lp),
    "mip": ("lp", _mip),
    "auto": ("linear", _auto),
}


def _chain(method: str) -> list[str]:
    """The methods whose stages ``method`` runs, first to last (``method`` itself last)."""
    if method not in BOUNDS_CHOICES:
        raise PrunemipError(f"unknown bounds method {method!r}; choose one of {', '.join(BOUNDS_CHOICES)}")
    chain = [method]
    while (before := STAGES[chain[-1]][0]) is not None:
        chain.append(before)
    return chain[::-1]


def _run(run: BoundsRun, bounds: NeuronBounds, methods: Sequence[str]) -> NeuronBounds:
    for name in methods:
        bounds = STAGES[name][1](run, bounds)
    return bounds


def continue_bounds(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    method: str,
    *,
    options: ObbtOptions | None = None,
    time_limit: float | None = None,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """The stages of ``method`` that come after the one that made ``bounds``.

    Typically ``bounds`` are linear ones and ``method`` is ``alpha``, ``lp``, ``mip`` or
    ``auto`` (see :func:`compute_bounds`).

    Args:
        network: the network.
        region: the input region.
        bounds: sound bounds by a method that ``method`` runs first (``bounds.method``).
        method: the bounds method to complete.
        options: LP/MIP limits and switches (default :class:`ObbtOptions`).
        time_limit: the attack's time limit: ``auto`` takes :func:`auto_lp_budget` of it
            unless ``options`` set a budget.
        points: inputs of the region (e.g. attack points) that help skip LPs that cannot gain.

    Returns:
        ``bounds`` tightened by the remaining stages, each appended to ``stages``.
    """
    chain = _chain(method)
    if bounds.method not in chain:
        raise PrunemipError(f"bounds method {method!r} does not run after {bounds.method!r}")
    run = BoundsRun(network, region, options, time_limit, points)
    return _run(run, bounds, chain[chain.index(bounds.method) + 1 :])


def compute_bounds(
    network: Network,
    region: InputRegion,
    method: str = DEFAULT_BOUNDS,
    *,
    options: ObbtOptions | None = None,
    time_limit: float | None = None,
    points: Sequence[np.ndarray] = (),
) -> NeuronBounds:
    """Sound neuron bounds by the named method, running every cheaper stage first.

    ``ia``: interval arithmetic; ``linear``: + linear relaxation (CROWN/DeepPoly);
    ``alpha``: ``linear`` + optimised lower slopes (α-CROWN; not a stage of the next ones);
    ``lp``: ``linear`` + LP-based tightening of the unstable neurons; ``mip``: + MIP-based
    tightening of the last hidden layer(s); ``auto`` (the default): ``linear``, then
    ``lp`` only when :func:`lp_pays`, with a budget of :func:`auto_lp_budget` of
    ``time_limit`` (the attack's).

    Args:
        network: the network.
        region: the input region (as many inputs as the network).
        method: a method of the registry :mod:`prunemip.solvers.methods`.
        options: LP/MIP limits and switches (default :class:`ObbtOptions`).
        time_limit: the attack's time limit, of which ``auto`` takes a share.
        points: inputs of the region (e.g. attack points) that help skip LPs that cannot gain.

    Returns:
        The bounds; their ``stages`` give time, #unstable and Σ(u − l) per stage.

    Raises:
        PrunemipError: for an unknown method, or a region of the wrong size.
    """
    chain = _chain(method)
    if region.size != network.n_inputs:
        raise PrunemipError(
            f"the input region has {region.size} inputs but the network takes {network.n_inputs}"
        )
    run = BoundsRun(network, region, options, time_limit, points)
    return _run(run, STAGES[chain[0]][1](run, None), chain[1:])
