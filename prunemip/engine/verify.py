"""Decide a VNN-LIB property on a network: ``sat`` (with a checked counterexample),
``unsat``, ``timeout`` or ``unknown``.

Per disjunct (input box ``B``, output constraints ``c_k·y ≤ d_k``), cheapest first:

1. falsification (:func:`~prunemip.engine.falsify.falsify`): the disjuncts over one box in
   one batch, maximising the smallest slack ``min_k (d_k − c_k·y)`` from the centre, random
   and output-diversified starts by APGD, on a share (:data:`FALSIFY_SHARE`) of the budget;
2. bounds: the cheap stages of ``bounds`` over ``B`` (up to the linear relaxation), and
   for each constraint a linear-relaxation lower bound of ``c_k·y`` itself (CROWN with the
   specification as the last layer); ``min_B c_k·y > d_k`` rules the disjunct out;
3. branch and bound (:func:`~prunemip.engine.bab.branch_and_bound`) over the unstable
   ReLUs of each disjunct still open, on ``bab_share`` of the time left, the disjuncts in
   turn (what one leaves over goes to the next): α,β-CROWN bounds of the constraints per
   subdomain, certified in numpy, and a checked witness from any subdomain;
4. the MIP: for a box still open, the expensive stages of ``bounds`` (LP tightening where
   it pays), the same rule-out again, then the MIP encoded with those bounds (bounds and
   encoding once per distinct box): ``max t`` s.t. ``c_k·y + t ≤ d_k`` for every ``k``,
   ``y = f(x)``, ``x ∈ B`` (``t`` is the smallest slack, :mod:`~prunemip.engine.slack`), in
   decide mode: stop at an incumbent with ``t > 0`` or once the dual bound proves
   ``t ≤ −τ`` (τ as for adversarial attacks: at least the slack's sensitivity to HiGHS's
   tolerances).

``sat`` only for a point whose float64 forward pass satisfies the property exactly;
``unsat`` only when every disjunct is ruled out by bounds, refuted by branch and bound or
proved by the original network's MIP. With ``surrogate_sparsity`` a magnitude-pruned copy's
MIP is searched first and its incumbents are checked on the original network (never used
for ``unsat``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from prunemip.devices import check_device
from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.linear import output_upper_bounds
from prunemip.encoders.mip_model import MipModel
from prunemip.engine.bab import BabOptions, branch_and_bound, root_bounds
from prunemip.engine.falsify import VERIFY_EFFORT, FalsifyOptions, falsify
from prunemip.engine.slack import slack_tolerance, with_slack_rows
from prunemip.engine.subdomains import OutputRows
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.pruning.sparsify import magnitude_prune
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import compute_bounds, continue_bounds
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve
from prunemip.solvers.methods import DEFAULT_BOUNDS
from prunemip.solvers.result import SolveStatus
from prunemip.vnnlib import Disjunct, Property

Verdict = Literal["sat", "unsat", "timeout", "unknown"]
#: :attr:`VerifyOptions.bab_share`'s default, measured (experiments/benchmarks/README.md,
#: ``vnncomp_mnist.py``).
BAB_SHARE = 0.5
#: The fraction of the budget the falsification may spend before bounds and MIPs.
FALSIFY_SHARE = 0.1


@dataclass
class VerifyResult:
    """The verdict, the counterexample that supports ``sat``, and how it was reached."""

    verdict: Verdict
    seconds: float
    stage: str = ""  #: what settled it: random, gradient, bounds, mip, surrogate
    x: np.ndarray | None = field(default=None, repr=False)
    outputs: np.ndarray | None = field(default=None, repr=False)
    disjuncts: list[str] = field(default_factory=list)  #: per-disjunct outcome


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


def slack_model(model: MipModel, disjunct: Disjunct) -> MipModel:
    """Add a free column ``t`` and rows ``c_k·y + t ≤ d_k``; maximise ``t``.

    Args:
        model: the encoded network over the disjunct's box.
        disjunct: the output constraints ``c_k·y ≤ d_k``.

    Returns:
        The model whose optimum is the smallest slack ``min_k (d_k − c_k·y)``, maximised.
    """
    rows = _rows(disjunct)
    return with_slack_rows(model, rows.coefficients, rows.rhs)


def _rows(disjunct: Disjunct) -> OutputRows:
    """The disjunct's output constraints as rows ``C y ≤ d``."""
    constraints = disjunct.constraints
    return OutputRows.create(
        np.array([c.coefficients for c in constraints]),
        np.array([c.rhs for c in constraints]),
        np.array([c.strict for c in constraints]),
    )


def _min_slack(disjunct: Disjunct, outputs: np.ndarray) -> float:
    return min(c.slack(outputs) for c in disjunct.constraints)


def _start(model: MipModel, disjunct: Disjunct, network: Network, x: np.ndarray) -> np.ndarray:
    values = model.solution_from_input(x)[:-1]
    return np.append(values, _min_slack(disjunct, network.forward(x)))


def _proof_tolerance(model: MipModel, disjunct: Disjunct, options: HighsOptions) -> float:
    """τ for ``t`` (:func:`~prunemip.engine.slack.slack_tolerance`)."""
    return slack_tolerance(model, _rows(disjunct).coefficients, options)


BoxKey = tuple[int, bytes, bytes]


def _box_key(network: Network, disjunct: Disjunct) -> BoxKey:
    """What bounds and MIPs are cached by: the network object and the disjunct's input box."""
    return id(network), disjunct.lower.tobytes(), disjunct.upper.tobytes()


@dataclass
class _Search:
    """One verification run: the property, the network, the clock and what has been found."""

    network: Network
    prop: Property
    deadline: float
    options: HighsOptions
    bounds_method: str = DEFAULT_BOUNDS
    found: tuple[np.ndarray, np.ndarray] | None = None
    #: Per :func:`_box_key`: the cheap bounds, and the full bounds with the box's MIP.
    cheap: dict[BoxKey, NeuronBounds] = field(default_factory=dict)
    models: dict[BoxKey, tuple[NeuronBounds, MipModel]] = field(default_factory=dict)
    #: Per :func:`_box_key`: the bounds branch and bound starts from (the cheap ones, α-tightened).
    bab_roots: dict[BoxKey, NeuronBounds] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def accept(self, x: np.ndarray, disjunct: Disjunct) -> bool:
        """Keep ``x`` if the original network's forward pass satisfies the disjunct."""
        point = np.clip(np.asarray(x, dtype=np.float64), disjunct.lower, disjunct.upper)
        outputs = self.network.forward(point)
        if disjunct.holds(point, outputs):
            self.found = (point, outputs)
            return True
        return False

    def falsify(
        self, disjuncts: list[Disjunct], options: FalsifyOptions, device: str, deadline: float
    ) -> str:
        """Run the falsifier on ``disjuncts``, one batch per distinct input box, until ``deadline``.

        Args:
            disjuncts: the property's disjuncts.
            options: the falsifier's effort.
            device: where its torch work runs.
            deadline: a ``time.perf_counter()`` shared by the boxes in turn.

        Returns:
            "random" or "gradient" for a point :meth:`accept` kept (a start, or one reached by
            gradient steps), else "". A disjunct without output constraints holds at its box's
            centre.
        """
        boxes: dict[BoxKey, list[Disjunct]] = {}
        for disjunct in disjuncts:
            if not disjunct.constraints and self.accept((disjunct.lower + disjunct.upper) / 2, disjunct):
                return "random"
            boxes.setdefault(_box_key(self.network, disjunct), []).append(disjunct)
        for index, group in enumerate(boxes.values()):
            share = (deadline - time.perf_counter()) / (len(boxes) - index)
            region = InputRegion.box(group[0].lower, group[0].upper)
            conjunctions = [_rows(d) for d in group]
            result = falsify(
                self.network,
                region,
                conjunctions,
                options,
                deadline=time.perf_counter() + share,
                device=device,
            )
            if result.found is not None and self.accept(result.points[result.found], group[result.found]):
                return "gradient" if result.moved else "random"
        return ""

    def cheap_bounds(self, network: Network, disjunct: Disjunct) -> NeuronBounds:
        """The bounds method's stages up to the linear relaxation (or α-CROWN) over the
        disjunct's box, once per box: what rules disjuncts out before any MIP."""
        key = _box_key(network, disjunct)
        if key not in self.cheap:
            method = self.bounds_method if self.bounds_method in ("ia", "linear", "alpha") else "linear"
            region = InputRegion.box(disjunct.lower, disjunct.upper)
            self.cheap[key] = compute_bounds(network, region, method)
        return self.cheap[key]

    def branch_and_bound(self, disjunct: Disjunct, deadline: float, device: str) -> str:
        """Branch and bound on the disjunct's constraints until ``deadline``: "sat" (a witness
        :meth:`accept` keeps), "unsat" (refuted) or "timeout"."""
        budget = deadline - time.perf_counter()
        identity = self.network.layers[-1].activation == "identity"
        if budget <= 0.0 or not disjunct.constraints or not identity:
            return "timeout"
        region = InputRegion.box(disjunct.lower, disjunct.upper)
        options = BabOptions(time_limit=budget, highs=self.options, device=device)
        key = _box_key(self.network, disjunct)
        if key not in self.bab_roots:
            cheap = self.cheap_bounds(self.network, disjunct)
            self.bab_roots[key] = root_bounds(self.network, region, cheap, options)
        options = replace(options, time_limit=max(deadline - time.perf_counter(), 1e-3))
        rows = _rows(disjunct)
        result = branch_and_bound(self.network, region, rows, options, bounds=self.bab_roots[key])
        if result.status == "found" and self.accept(result.x, disjunct):
            return "sat"
        return "unsat" if result.status == "refuted" else "timeout"

    def bounds_and_model(
        self, network: Network, disjunct: Disjunct, budget: float
    ) -> tuple[NeuronBounds, MipModel]:
        """The full bounds (LP/MIP stages run only for a box a MIP needs, within ``budget``)
        and the box's MIP, once per box."""
        key = _box_key(network, disjunct)
        if key not in self.models:
            region = InputRegion.box(disjunct.lower, disjunct.upper)
            bounds = self.cheap_bounds(network, disjunct)
            if self.bounds_method in ("lp", "mip", DEFAULT_BOUNDS):
                bounds = continue_bounds(network, region, bounds, self.bounds_method, time_limit=budget)
            self.models[key] = (bounds, encode(network, region, bounds))
        return self.models[key]

    def mip(self, network: Network, disjunct: Disjunct, budget: float, check_original: bool) -> str:
        """Solve the slack MIP of ``network`` within ``budget`` seconds, its bounds included
        (never past the run's deadline); return sat, unsat, timeout or unknown.

        An "unknown" (HiGHS finished within what its tolerances can move ``t``) is solved
        again under :meth:`HighsOptions.tightened` while ``budget`` lasts; only that solve's
        proof counts.
        """
        deadline = min(time.perf_counter() + budget, self.deadline)  # the bounds spend it too
        bounds, encoded = self.bounds_and_model(network, disjunct, budget)
        if not check_original and _ruled_out_by_bounds(network, disjunct, bounds):
            return "unsat (bounds)"
        if time.perf_counter() >= deadline:
            return "timeout"
        model = slack_model(encoded, disjunct)
        start = _start(model, disjunct, network, (disjunct.lower + disjunct.upper) / 2)
        verdict = self._slack_mip(model, disjunct, self.options, deadline, start, check_original)
        tighter = self.options.tightened()
        if (
            verdict == "unknown"
            and not check_original
            and tighter is not None
            and time.perf_counter() < deadline
        ):
            verdict = self._slack_mip(model, disjunct, tighter, deadline, start, check_original)
        return verdict

    def _slack_mip(
        self,
        model: MipModel,
        disjunct: Disjunct,
        options: HighsOptions,
        deadline: float,
        start: np.ndarray,
        check_original: bool,
    ) -> str:
        """One solve of the slack MIP ``max t`` under ``options``: "unsat" needs a final dual
        bound ≤ −τ for the τ of these options; any incumbent the forward pass accepts is "sat"."""
        tolerance = _proof_tolerance(model, disjunct, options)

        def candidate(values: np.ndarray) -> bool:
            return self.accept(model.inputs_from_solution(values), disjunct)

        result = solve(
            model,
            replace(options, time_limit=max(deadline - time.perf_counter(), 1e-3)),
            start=start,
            decide=None if check_original else DecisionRule(target=0.0, proof=-tolerance),
            on_incumbent=candidate,
        )
        if self.found is not None:
            return "sat"
        if check_original:
            return "timeout" if result.status == SolveStatus.TIME_LIMIT else "unknown"
        proved = result.dual_bound is not None and result.dual_bound <= -tolerance
        if result.status in (SolveStatus.OPTIMAL, SolveStatus.DECIDED_AT_MOST) and proved:
            return "unsat"
        if result.status in (SolveStatus.TIME_LIMIT, SolveStatus.INTERRUPTED, SolveStatus.LIMIT):
            return "timeout"
        return "unknown"


def _ruled_out_by_bounds(network: Network, disjunct: Disjunct, bounds: NeuronBounds) -> bool:
    """Whether some constraint ``c·y ≤ d`` is impossible over the box: a sound lower bound
    of ``c·y`` exceeds ``d``. The bound is the better of the output bounds summed per
    output and the linear relaxation of ``c·y`` itself (both sound)."""
    if not disjunct.constraints:
        return False
    last = len(network.layers) - 1
    low, high = bounds.post_activation(last)
    coefficients = np.array([c.coefficients for c in disjunct.constraints])
    rhs = np.array([c.rhs for c in disjunct.constraints])
    strict = np.array([c.strict for c in disjunct.constraints])
    smallest = np.sum(np.minimum(coefficients * low, coefficients * high), axis=1)
    region = InputRegion.box(disjunct.lower, disjunct.upper)
    upper = output_upper_bounds(network, region, bounds, -coefficients)  # one pass for all rows
    if upper is not None:
        smallest = np.maximum(smallest, -upper)
    return bool(np.any((smallest > rhs) | (strict & (smallest >= rhs))))


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
    device: str = "cpu"  #: where the falsifier's torch work runs: cpu, or cuda
    #: the share of the time left after the bounds that branch and bound may spend before the
    #: MIP (0: no branch and bound; 1: the MIP only gets what it leaves over)
    bab_share: float = BAB_SHARE


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
    """
    start = time.perf_counter()
    options = options or VerifyOptions()
    check_sizes(network, prop)
    check_device(options.device)
    if timeout <= 0:
        raise PrunemipError(f"the timeout must be positive, got {timeout}")
    search = _Search(network, prop, start + timeout, options.highs, options.bounds)

    def done(verdict: Verdict, stage: str, outcomes: list[str]) -> VerifyResult:
        x, outputs = search.found if search.found is not None else (None, None)
        return VerifyResult(verdict, time.perf_counter() - start, stage, x, outputs, outcomes)

    if not prop.disjuncts:
        return done("unsat", "property", [])
    falsifier = replace(options.falsify, seed=options.seed)
    stage = search.falsify(list(prop.disjuncts), falsifier, options.device, start + FALSIFY_SHARE * timeout)
    if stage:
        return done("sat", stage, ["sat"])
    open_disjuncts = [
        d for d in prop.disjuncts if not _ruled_out_by_bounds(network, d, search.cheap_bounds(network, d))
    ]
    outcomes = ["unsat (bounds)"] * (len(prop.disjuncts) - len(open_disjuncts))
    if not open_disjuncts:
        return done("unsat", "bounds", outcomes)
    if options.bab_share > 0.0:
        deadline = time.perf_counter() + options.bab_share * search.remaining()
        left = []
        for index, disjunct in enumerate(open_disjuncts):
            share = (deadline - time.perf_counter()) / (len(open_disjuncts) - index)
            outcome = search.branch_and_bound(disjunct, time.perf_counter() + share, options.device)
            if outcome == "sat":
                return done("sat", "bab", [*outcomes, "sat"])
            if outcome == "unsat":
                outcomes.append("unsat (bab)")
            else:
                left.append(disjunct)
        if not left:
            return done("unsat", "bab", outcomes)
        open_disjuncts = left
    if options.surrogate_sparsity is not None:
        surrogate = magnitude_prune(network, options.surrogate_sparsity)
        share = search.remaining() / 2 / len(open_disjuncts)
        for disjunct in open_disjuncts:
            if search.mip(surrogate, disjunct, share, check_original=True) == "sat":
                return done("sat", "surrogate", [*outcomes, "sat"])
    for index, disjunct in enumerate(open_disjuncts):
        remaining = search.remaining()
        if remaining <= 0:
            return done("timeout", "mip", outcomes)
        outcome = search.mip(
            network, disjunct, remaining / (len(open_disjuncts) - index), check_original=False
        )
        outcomes.append(outcome)
        if outcome == "sat":
            return done("sat", "mip", outcomes)
    if all(o.startswith("unsat") for o in outcomes):
        return done("unsat", "mip", outcomes)
    return done("timeout" if "timeout" in outcomes else "unknown", "mip", outcomes)
