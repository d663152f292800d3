"""Branch and bound over unstable ReLUs on the linear bounds, with HiGHS for what they leave.

The query (:class:`~prunemip.engine.subdomains.OutputRows` over a network and a region)
asks whether some ``x`` of the region satisfies every output row ``c_k·y ≤ d_k``. Branch
and bound (Bunel et al., "Branch and Bound for Piecewise Linear Neural Network
Verification", JMLR 2020) minimises ``v(x) = max_k (c_k·f(x) − d_k)`` over the region:

* bound: every subdomain (the region with ReLU splits) gets sound lower bounds of the rows
  from the linear relaxation (:meth:`Query.bound <prunemip.engine.subdomains.Query.bound>`);
  a subdomain whose bounds refute a row, or that its bounds prove empty, is closed;
* search: best first, the open subdomains with the lowest proven bound of ``v`` are split
  next, a step at a time (``batch`` of them), on the neuron BaBSR or FSB picks; the proven
  bound of the whole query is the lowest bound of an open subdomain;
* falsify on the way: each subdomain's concretisation points (the minimisers of its rows'
  linear lower bounds) go through the float64 forward pass, and one whose outputs satisfy
  every row is the witness;
* the MIP: a subdomain with at most ``mip_unstable`` unstable ReLUs left, or at
  ``max_depth``, is decided by HiGHS on its own big-M MIP (split neurons stable, so fewer
  binaries; exact on the subdomain, :func:`subdomain_model`):
  ``max t`` s.t. ``c_k·y + t ≤ d_k`` in decide mode; a dual bound ``≤ −τ`` closes it, an
  incumbent goes through the forward pass like any witness.

"refuted" needs every subdomain closed by float-sound bounds or by a MIP proof; "found"
needs a point of the region whose float64 forward pass satisfies every row, re-checked
here. Otherwise the result is "open", with the subdomains left and the proven bound.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from prunemip import interrupts
from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.linear import alpha_bounds, linear_bounds
from prunemip.encoders.mip_model import MipModel
from prunemip.engine.beta import ITERATIONS, Parameters, TorchNetwork
from prunemip.engine.slack import slack_tolerance, with_slack_rows
from prunemip.engine.subdomains import OutputRows, Query, Subdomain
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import DecisionRule, HighsOptions, solve
from prunemip.solvers.result import SolveStatus

BabStatus = Literal["refuted", "found", "open"]
#: Called after each step with the open subdomains, the proven bound of ``v`` and the best ``v`` seen.
StepHook = Callable[[int, float, float], None]
Branching = Literal["babsr", "fsb"]


@dataclass(frozen=True)
class BabOptions:
    """How :func:`branch_and_bound` searches."""

    time_limit: float = 60.0  #: seconds, the MIPs included
    max_subdomains: int | None = None  #: stop after bounding this many subdomains (resumed calls count)
    max_depth: int = 64  #: a subdomain with this many splits goes to the MIP
    branching: Branching = "babsr"
    fsb_candidates: int = 3  #: FSB re-bounds the top ``k`` of each score
    batch: int = 32  #: subdomains split per step
    #: a subdomain with at most this many unstable ReLUs goes to the MIP (0: only when none is left)
    mip_unstable: int = 0
    mip: bool = True  #: hand subdomains to HiGHS at all (else they stay open)
    mip_time_limit: float = 10.0  #: seconds per subdomain MIP
    highs: HighsOptions = field(default_factory=lambda: HighsOptions(threads=1))
    intermediate: bool = False  #: recompute the bounds of the layers after a split
    #: optimise slopes and split multipliers in torch (α,β-CROWN), certified in numpy
    optimise: bool = True
    iterations: int = ITERATIONS  #: Adam steps of that optimisation per step
    device: str = "cpu"  #: torch device of the optimisation: "cpu" or "cuda"


@dataclass
class BabResult:
    """The outcome of :func:`branch_and_bound`."""

    status: BabStatus
    #: a proven lower bound of ``min_x max_k (c_k·f(x) − d_k)`` (``inf`` if every subdomain is empty)
    bound: float
    best: float  #: the smallest ``max_k (c_k·f(x) − d_k)`` at a checked point (``inf`` if none)
    x: np.ndarray | None = field(default=None, repr=False)  #: the witness, for "found"
    outputs: np.ndarray | None = field(default=None, repr=False)
    visited: int = 0  #: subdomains bounded
    mip_solves: int = 0
    open: tuple[Subdomain, ...] = field(default=(), repr=False)  #: the subdomains left, for "open"
    seconds: float = 0.0  #: of this call (``visited`` and ``mip_solves`` count resumed calls too)
    closed: float = np.inf  #: the lowest proven value of a closed subdomain: with ``open``, the frontier


@dataclass
class _Run:
    """One search: the query, the clock, the open subdomains and what was found."""

    query: Query
    options: BabOptions
    deadline: float
    queue: list[tuple[float, int, Subdomain]] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)
    unresolved: list[Subdomain] = field(default_factory=list)  #: MIPs that ran out of time
    closed: float = np.inf  #: the lowest proven value of a closed subdomain
    best: float = np.inf
    witness: tuple[np.ndarray, np.ndarray] | None = None
    visited: int = 0
    mip_solves: int = 0
    optimiser: TorchNetwork | None = None
    cancel: Callable[[], bool] | None = None  #: polled between steps and in the subdomain MIPs
    #: the parent's optimised parameters of each child not yet optimised (by ``id``): its warm start
    inherited: dict[int, Parameters | None] = field(default_factory=dict)

    def out_of_budget(self) -> bool:
        limit = self.options.max_subdomains
        late = interrupts.stopping(self.cancel) or time.perf_counter() >= self.deadline
        return late or (limit is not None and self.visited >= limit)

    def offer(self, points: np.ndarray) -> bool:
        """Check points by the float64 forward pass; keep the first that satisfies every row."""
        region, rows = self.query.region, self.query.rows
        if points.size == 0:
            return False
        points = np.vstack([p if region.contains(p) else region.project(p) for p in points])
        outputs = np.atleast_2d(self.query.network.forward(points))
        violation = rows.violation(outputs)
        self.best = min(self.best, float(np.min(violation)))
        for index in np.flatnonzero(violation <= 0.0):
            if rows.hold(outputs[index]):
                self.witness = (points[index].copy(), outputs[index].copy())
                return True
        return False

    def add(self, subs: list[Subdomain]) -> bool:
        """Optimise the bounds the linear relaxation leaves open, queue the subdomains still
        open, then offer every one's points."""
        self.visited += len(subs)
        if self.optimiser is not None:
            subs = self.optimise(subs)
        for sub in subs:
            self.push(sub)
        return self.offer(np.vstack([s.points for s in subs]))

    def optimise(self, subs: list[Subdomain]) -> list[Subdomain]:
        """The open ones of ``subs`` re-bounded with optimised slopes and split multipliers,
        in one batch."""
        assert self.optimiser is not None
        todo = [i for i, s in enumerate(subs) if not s.refuted]
        if not todo:
            return subs
        group = [subs[i] for i in todo]
        lower = [np.stack(layer) for layer in zip(*(s.lower for s in group), strict=True)]
        upper = [np.stack(layer) for layer in zip(*(s.upper for s in group), strict=True)]
        signs = [np.zeros_like(layer) for layer in lower]
        for b, sub in enumerate(group):
            for split in sub.splits:
                signs[split.layer][b, split.neuron] = 1.0 if split.active else -1.0
        starts = [self.inherited.get(id(s)) for s in group]
        self.inherited.clear()
        rows = -self.query.rows.coefficients
        found = self.optimiser.optimise(rows, lower, upper, signs, self.options.iterations, starts)
        subs = list(subs)
        for i, sub in zip(todo, self.query.optimised(group, found), strict=True):
            subs[i] = sub
        return subs

    def push(self, sub: Subdomain) -> None:
        if sub.refuted:
            self.closed = min(self.closed, sub.value)
        else:
            heapq.heappush(self.queue, (sub.value, next(self.counter), sub))

    def step(self) -> bool:
        """Split up to ``batch`` open subdomains (lowest bound first); True once a witness is found."""
        popped = [heapq.heappop(self.queue)[2] for _ in range(min(self.options.batch, len(self.queue)))]
        children: list[Subdomain] = []
        for index, sub in enumerate(popped):
            choice = self._choose(sub)
            if choice is not None and sub.depth < self.options.max_depth:
                pending = self.optimiser is not None  # the optimisation bounds the rows
                pair = self.query.children(sub, *choice, self.options.intermediate, not pending)
                for child in pair:
                    self.inherited[id(child)] = sub.parameters
                children.extend(pair)
            elif self.decide_by_mip(sub):
                for other in popped[index:]:  # their bounds still hold for the result's bound
                    self.push(other)
                return True
        return bool(children) and self.add(children)

    def _choose(self, sub: Subdomain) -> tuple[int, int] | None:
        unstable = sum(int(np.count_nonzero(mask)) for mask in self.query.unstable(sub))
        if unstable <= self.options.mip_unstable and self.options.mip:
            return None
        if self.options.branching == "fsb":
            return self.query.choose_fsb(sub, self.options.fsb_candidates)
        return self.query.choose_babsr(sub)

    def decide_by_mip(self, sub: Subdomain) -> bool:
        """Decide ``sub`` by its slack MIP in decide mode; True once a witness is found.

        Closed on a dual bound ``t* ≤ −τ`` (every point has ``v ≥ τ``); left unresolved on a
        time limit or without ``mip``.
        """
        remaining = self.deadline - time.perf_counter()
        if not self.options.mip or remaining <= 0.0:
            self.unresolved.append(sub)
            return False
        rows = self.query.rows
        model = with_slack_rows(subdomain_model(self.query, sub), rows.coefficients, rows.rhs)
        highs = self.options.highs
        tolerance = slack_tolerance(model, rows.coefficients, highs)
        limit = min(self.options.mip_time_limit, remaining)
        self.mip_solves += 1
        result = solve(
            model,
            replace(highs, time_limit=max(limit, 1e-3)),
            decide=DecisionRule(target=0.0, proof=-tolerance),
            on_incumbent=lambda values: self.offer(model.inputs_from_solution(values)[None, :]),
            cancel=self.cancel,
        )
        if self.witness is not None:
            return True
        proved = result.dual_bound is not None and result.dual_bound <= -tolerance
        if result.status in (SolveStatus.OPTIMAL, SolveStatus.DECIDED_AT_MOST) and proved:
            self.closed = min(self.closed, -result.dual_bound)
        elif result.status != SolveStatus.INFEASIBLE:  # infeasible: the subdomain is empty
            self.unresolved.append(sub)
        return False

    def open_subdomains(self) -> tuple[Subdomain, ...]:
        return tuple(s for _, _, s in self.queue) + tuple(self.unresolved)

    def bound(self) -> float:
        """The proven lower bound of ``v`` over the region: the lowest of the closed and open ones."""
        return min([self.closed, *(s.value for s in self.open_subdomains())])

    def result(self, status: BabStatus, start: float) -> BabResult:
        open_subs = self.open_subdomains()
        bound = self.bound()
        x, outputs = self.witness if self.witness is not None else (None, None)
        return BabResult(
            status,
            bound,
            self.best,
            x,
            outputs,
            self.visited,
            self.mip_solves,
            open_subs if status == "open" else (),
            time.perf_counter() - start,
            self.closed,
        )


def subdomain_model(query: Query, sub: Subdomain) -> MipModel:
    """The big-M MIP of the network over ``sub`` (objective zero), exact on the subdomain.

    Encoded (:func:`~prunemip.encoders.bigm.encode`) with the subdomain's bounds, the output
    layer's tightened by the linear relaxation. An active split's clamped bounds ``[0, u]``
    make the neuron stably active there: ``y = ẑ`` with the column bound ``y ≥ 0``, which *is*
    the split ``ẑ ≥ 0``. A stably inactive neuron, though, is encoded as ``y = 0`` with no row
    on ``ẑ``: an inactive split encoded that way would let the MIP pick inputs with ``ẑ > 0``
    and evaluate a different function there. So an inactive split keeps a binary (its bounds
    ``[l, −l]``, any positive upper end serves) fixed to ``δ = 0``: the rows ``y ≤ u δ``,
    ``y ≥ ẑ`` then give ``ẑ ≤ y = 0``, the split itself.

    Exactness, by induction over the layers: let ``S_k`` be the points of the region that
    satisfy the splits of layers ``< k``; layer ``k``'s bounds hold on ``S_k``. At a feasible
    point whose layers ``< k`` carry the true values of its input ``x ∈ S_k``, layer ``k``'s
    big-M rows are exact (valid bounds), the split rows put ``x`` in ``S_{k+1}``, and a neuron
    stable by bounds really is (its bounds hold at ``x``), so layer ``k`` is true too: every
    feasible point is the forward pass of a point of the subdomain, and every such forward pass
    is feasible. A split neuron the encoder folds away (no path to the outputs, a constant)
    loses its row: the MIP is then a relaxation of the subdomain, still sound for refutation,
    and witnesses are re-checked by the forward pass in any case.

    Args:
        query: the network, region and rows.
        sub: the subdomain.

    Returns:
        The model; its inactive splits' binaries have upper bound 0.
    """
    network, region = query.network, query.region
    last = len(network.layers) - 1
    lows, highs = list(sub.lower), list(sub.upper)
    lows[last], highs[last] = query.tightened(lows, highs, last, np.arange(lows[last].size))
    inactive = [s for s in sub.splits if not s.active and lows[s.layer][s.neuron] < 0.0]
    for split in inactive:
        highs[split.layer] = highs[split.layer].copy()
        highs[split.layer][split.neuron] = -lows[split.layer][split.neuron]
    bounds = NeuronBounds(
        input_lower=region.lower.copy(),
        input_upper=region.upper.copy(),
        lower=tuple(lows),
        upper=tuple(highs),
        relu_layers=query.relu_layers,
        method="bab",
        seconds=0.0,
    )
    model = encode(network, region, bounds)
    col_upper = model.col_upper.copy()
    for split in inactive:
        column = model.layers[split.layer].binary_column[split.neuron]
        if column >= 0:
            col_upper[column] = 0.0
    return replace(model, col_upper=col_upper)


def branch_and_bound(
    network: Network,
    region: InputRegion,
    rows: OutputRows,
    options: BabOptions | None = None,
    *,
    bounds: NeuronBounds | None = None,
    on_step: StepHook | None = None,
    cancel: Callable[[], bool] | None = None,
    resume: BabResult | None = None,
) -> BabResult:
    """Decide whether some ``x`` of ``region`` satisfies every row of ``rows`` (see the module).

    Args:
        network: the network; its output layer must be an identity layer.
        region: the input region.
        rows: the conjunction ``C y ≤ d`` (an attack on target ``t`` of label ``y`` is the one
            row ``y_label − y_t ≤ 0``).
        options: how to search (default :class:`BabOptions`).
        bounds: sound neuron bounds over ``region`` to start from (default: the linear ones).
        on_step: sees, after each step, the open subdomains' count, the proven lower bound of
            ``v`` and the smallest ``v`` at a checked point.
        cancel: polled between steps and inside subdomain MIPs; True ends the search "open",
            as Ctrl-C or the time limit do (a search run beside another one that settled it).
        resume: an "open" result of an earlier call on the same network, region and rows: the
            search carries on from its frontier (its open subdomains, the lowest value of those
            it closed and the best value seen) instead of starting again at the root. Sound
            because the frontier's subdomains cover every point of the region not yet closed,
            and a closed subdomain's proven value stays proven.

    Returns:
        "refuted" (no such ``x``), "found" (with a witness whose forward pass satisfies every
        row) or "open" (the budget ran out), with the proven bound and the search's figures.

    Raises:
        PrunemipError: for a network whose output layer is not an identity layer, or a
            ``resume`` that is not "open".
    """
    start = time.perf_counter()
    options = options or BabOptions()
    if network.layers[-1].activation != "identity":
        raise PrunemipError("branch and bound needs an identity output layer")
    if resume is not None and resume.status != "open":
        raise PrunemipError(f"only an open search can be resumed, not a {resume.status!r} one")
    query = Query(network, region, rows)
    run = _Run(query, options, start + options.time_limit, cancel=cancel)
    if options.optimise:
        run.optimiser = TorchNetwork(network, region, options.device)
    if resume is not None:
        run.closed, run.best = resume.closed, resume.best
        run.visited, run.mip_solves = resume.visited, resume.mip_solves
        for sub in resume.open:
            run.push(sub)
    else:
        bounds = root_bounds(network, region, bounds, options)
        root = query.bound((), bounds.lower, bounds.upper, len(network.layers))
        if run.add([root]) or run.offer(region.midpoint[None, :]):
            return run.result("found", start)
    while run.queue:
        if run.out_of_budget():
            return run.result("open", start)
        if run.step():
            return run.result("found", start)
        if on_step is not None:
            on_step(len(run.queue) + len(run.unresolved), run.bound(), run.best)
    return run.result("open" if run.unresolved else "refuted", start)


def root_bounds(
    network: Network, region: InputRegion, bounds: NeuronBounds | None, options: BabOptions
) -> NeuronBounds:
    """The bounds branch and bound starts from: ``bounds`` (default: the linear ones), tightened
    by α-CROWN when ``options.optimise`` and no α stage ran yet, on one torch thread (its
    products are small: more threads only contend). Callers with several queries over one
    region compute them once.

    Args:
        network: the network.
        region: the input region.
        bounds: sound bounds over ``region``, or ``None``.
        options: the search's options.

    Returns:
        Sound bounds over ``region``.
    """
    if bounds is None:
        bounds = linear_bounds(network, region)
    if not options.optimise or any(stage.method == "alpha" for stage in bounds.stages):
        return bounds
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return alpha_bounds(network, region, bounds)
    finally:
        torch.set_num_threads(threads)
