"""Decide a VNN-LIB property on a network: ``sat`` (with a checked counterexample),
``unsat``, ``timeout`` or ``unknown``.

A property is a disjunction of (input box ``B``, output constraints ``c_k·y ≤ d_k``) pairs;
its disjuncts are grouped by box into one :class:`~prunemip.engine.spec.Spec` each
(:func:`~prunemip.engine.spec.property_specs`) and decided by the engine
(:func:`~prunemip.engine.decide.decide`), the boxes sharing the budget: cheap bounds
(a constraint whose sound lower bound of ``c_k·y`` exceeds ``d_k`` rules its disjunct out),
falsification on :data:`FALSIFY_SHARE` of the budget, branch and bound on networks with many
unstable ReLUs, optionally a magnitude-pruned surrogate's MIPs, then each open disjunct's
slack MIP ``max t`` s.t. ``c_k·y + t ≤ d_k``, ``y = f(x)``, ``x ∈ B``, in decide mode.

``sat`` only for a point whose float64 forward pass satisfies the property exactly;
``unsat`` only when every disjunct is ruled out by bounds, refuted by branch and bound or
proved by the network's own MIP (a surrogate's never counts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from prunemip.devices import check_device
from prunemip.engine.decide import Decision, EngineOptions, Outcome, decide
from prunemip.engine.falsify import VERIFY_EFFORT, FalsifyOptions
from prunemip.engine.progress import ProgressHook
from prunemip.engine.spec import Spec, property_specs
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.pruning.sparsify import magnitude_prune
from prunemip.solvers.highs import HighsOptions
from prunemip.solvers.methods import DEFAULT_BOUNDS
from prunemip.vnnlib import Property

Verdict = Literal["sat", "unsat", "timeout", "unknown"]
#: The fraction of the budget the falsification may spend before bounds and MIPs.
FALSIFY_SHARE = 0.1
#: The engine's stages in the order they run: what settles a property is its latest stage needed.
_STAGE_ORDER = ("bounds", "falsify", "bab", "surrogate", "mip")


@dataclass
class VerifyResult:
    """The verdict, the counterexample that supports ``sat``, and how it was reached."""

    verdict: Verdict
    seconds: float
    stage: str = ""  #: what settled it: random, gradient, bounds, bab, surrogate, mip, property
    x: np.ndarray | None = field(default=None, repr=False)
    outputs: np.ndarray | None = field(default=None, repr=False)
    #: per disjunct, in the property's order: sat, "unsat (bounds)", "unsat (bab)", unsat (its
    #: MIP), timeout, unknown, or open (not reached: another disjunct was satisfied first)
    disjuncts: list[str] = field(default_factory=list)
    interrupted: bool = False  #: Ctrl-C ended the search: the verdict is what was known then


def check_sizes(network: Network, prop: Property) -> None:
    """Raise :class:`PrunemipError` unless ``prop`` declares the network's input and output counts.

    Args:
        network: the network.
        prop: the property.
    """
    if prop.n_inputs != network.n_inputs or prop.n_outputs != network.n_outputs:
        raise PrunemipError(
            f"{prop.source} declares {prop.n_inputs} inputs and {prop.n_outputs} outputs, but the network "
            f"has {network.n_inputs} and {network.n_outputs}"
        )


@dataclass(frozen=True)
class VerifyOptions:
    """How :func:`verify` searches."""

    #: a method of :func:`~prunemip.solvers.bounds.compute_bounds` for each input box
    bounds: str = DEFAULT_BOUNDS
    #: search a magnitude-pruned copy of this sparsity first (its incumbents checked on the network)
    surrogate_sparsity: float | None = None
    highs: HighsOptions = field(default_factory=lambda: HighsOptions(threads=1))
    seed: int = 0  #: seed of the falsification (it replaces ``falsify.seed``)
    #: the falsifier's effort, on :data:`FALSIFY_SHARE` of the budget at most
    falsify: FalsifyOptions = VERIFY_EFFORT
    device: str = "cpu"  #: where the falsifier's and branch and bound's torch work runs: cpu, or cuda
    bab: bool = True  #: decide mode: branch and bound beside the MIPs (False: the MIPs alone)
    progress: ProgressHook | None = None  #: sees each disjunct's state as the search goes


def verify(
    network: Network, prop: Property, timeout: float, options: VerifyOptions | None = None
) -> VerifyResult:
    """Decide ``prop`` on ``network`` within ``timeout`` seconds.

    Args:
        network: the network.
        prop: the VNN-LIB property (a disjunction of input boxes with output constraints).
        timeout: the budget in seconds (> 0).
        options: how to search (default :class:`VerifyOptions`).

    Returns:
        The verdict, with a counterexample checked by the forward pass for ``sat``.

    Raises:
        PrunemipError: for sizes that do not match, an unknown device or a non-positive timeout.
    """
    start = time.perf_counter()
    options = options or VerifyOptions()
    check_sizes(network, prop)
    check_device(options.device)
    if timeout <= 0:
        raise PrunemipError(f"the timeout must be positive, got {timeout}")
    if not prop.disjuncts:
        return VerifyResult("unsat", time.perf_counter() - start, "property")
    surrogate = None
    if options.surrogate_sparsity is not None:
        surrogate = magnitude_prune(network, options.surrogate_sparsity)
    engine = EngineOptions(
        bounds=options.bounds,
        highs=options.highs,
        falsify=replace(options.falsify, seed=options.seed),
        falsify_share=FALSIFY_SHARE,
        bab=options.bab,
        surrogate=surrogate,
        device=options.device,
        progress=options.progress,
    )
    groups = property_specs(prop)
    decisions = decide(network, [spec for spec, _ in groups], timeout, engine)
    return _result(network, groups, decisions, time.perf_counter() - start)


def _result(
    network: Network, groups: list[tuple[Spec, list[int]]], decisions: list[Decision], seconds: float
) -> VerifyResult:
    """The property's verdict from its boxes' decisions."""
    by_index = {
        index: outcome
        for (_, indices), decision in zip(groups, decisions, strict=True)
        for index, outcome in zip(indices, decision.outcomes, strict=True)
    }
    settled = [by_index[index] for index in range(len(by_index))]  # the property's order
    statuses = {outcome.status for outcome in settled}
    interrupted = any(decision.interrupted for decision in decisions)
    for decision in decisions:
        if decision.status == "sat" and decision.witness is not None:
            found = decision.outcomes[decision.witness]
            assert found.point is not None
            disjuncts = [_describe(o, sat_found=True) for o in settled]
            stage = _sat_stage(found, decision)
            return VerifyResult(
                "sat", seconds, stage, found.point, network.forward(found.point), disjuncts, interrupted
            )
    verdict: Verdict = "unsat" if statuses == {"unsat"} else "timeout" if "timeout" in statuses else "unknown"
    stage = max((o.stage for o in settled), key=_stage_rank)
    disjuncts = [_describe(o, sat_found=False) for o in settled]
    return VerifyResult(verdict, seconds, stage, None, None, disjuncts, interrupted)


def _stage_rank(stage: str) -> int:
    """How late ``stage`` runs (−1: none ran, an interrupt came first)."""
    return _STAGE_ORDER.index(stage) if stage in _STAGE_ORDER else -1


def _sat_stage(found: Outcome, decision: Decision) -> str:
    """The stage of a counterexample, the falsifier's split into a start ("random") or gradient steps."""
    if found.stage != "falsify":
        return found.stage
    return "gradient" if decision.falsified is not None and decision.falsified.moved else "random"


def _describe(outcome: Outcome, *, sat_found: bool) -> str:
    """One disjunct's outcome as :attr:`VerifyResult.disjuncts` lists it."""
    if outcome.status == "unsat" and outcome.stage in ("bounds", "bab"):
        return f"unsat ({outcome.stage})"
    if sat_found and outcome.status in ("timeout", "unknown") and outcome.solve is None:
        return "open"
    return outcome.status
