"""The decision engine: one ladder for attacks, properties, studies and the Python API.

:func:`decide` answers :class:`~prunemip.engine.spec.Spec` questions (is there an ``x`` of the
region whose outputs satisfy one of the conjunctions ``C_j·y ≤ d_j``?) per disjunct, cheapest
first, every stage on what the earlier ones left open:

1. **bounds**: the cheap stages of the bounds method over the region (up to the linear
   relaxation, or α-CROWN when asked); in decide mode a conjunction is refuted when a row's
   sound lower bound of ``c_k·y`` (the better of the output intervals and the linear
   relaxation of ``c_k·y`` itself) proves its slack ``≤ −τ``;
2. **falsify** (:func:`~prunemip.engine.falsify.falsify`): batched multi-restart APGD on
   every open conjunction's slack, on ``falsify_share`` of the budget, from the given starts;
   its best points seed the MIPs;
3. **branch and bound** (:func:`~prunemip.engine.bab.branch_and_bound`, decide mode), the
   open conjunctions in turn, *beside* stages 4–5: it runs in this thread while a worker
   thread runs the exact stages, each skipping or cancelling a conjunction the other settled,
   until every conjunction is settled or time is up. Neither order of the two can be picked
   in advance: on the study's dense nets branch and bound finds the adversarial examples in
   seconds that the MIP misses in 180 s, on its pruned ones the MIP proves in 12 s what
   branch and bound leaves open after 90 s (``experiments/benchmarks/README.md``, "Branch and
   bound beside the MIP"). HiGHS releases the GIL while it solves, so with a core each the
   race takes about as long as the faster of the two (measured: 17.5 s racing against 17.1 s
   for the MIP alone); two racers on one core share it. A conjunction whose share of the time
   ran out gets the time that later ones left over, and its branch and bound carries on from
   the open subdomains it left;
4. **surrogate** (:func:`~prunemip.engine.surrogate.search_surrogate`, when one is given): half
   the time left on a cheaper network's MIPs, incumbents checked on this network (never a
   proof);
5. **MIP** (:class:`~prunemip.engine.mip.ConjunctionMip`): the expensive bounds stages (LP
   tightening where it pays) once, the refutation of 1. again, the encoding once, then each
   open conjunction's slack MIP on an even share of the time left (what one leaves over goes
   to the next); a conjunction HiGHS leaves "unknown" (settled within what its tolerances can
   move the slack) is solved again under :meth:`HighsOptions.tightened` while time lasts.

Decide mode stops at the first conjunction satisfied; optimize mode skips 1.'s refutation and
3., runs 4–5 in this thread and solves every conjunction's MIP to optimality. Soundness:
"sat" only for a point of the region whose float64 forward pass satisfies the conjunction
(strict rows strictly); "unsat" only from float-sound bounds, branch and bound's certified
refutation or a MIP dual bound ``≤ −τ``. Ctrl-C (:mod:`prunemip.interrupts`) or the deadline
ends the search with what it has: the checked points and proven bounds so far, marked
interrupted.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from prunemip import interrupts
from prunemip.encoders.bigm import DEFAULT_FORMULATION, encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.linear import output_upper_bounds
from prunemip.encoders.mip_model import MipModel
from prunemip.engine.bab import BabOptions, BabResult, branch_and_bound, root_bounds
from prunemip.engine.falsify import FalsifyOptions, FalsifyResult, falsify
from prunemip.engine.mip import ConjunctionMip, MipAnswer, combined, verdict
from prunemip.engine.progress import Progress, ProgressHook
from prunemip.engine.slack import ROBUST_TOLERANCE
from prunemip.engine.spec import Spec
from prunemip.engine.surrogate import search_surrogate
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.solvers.bounds import ObbtOptions, compute_bounds, continue_bounds
from prunemip.solvers.highs import HighsOptions
from prunemip.solvers.methods import BOUNDS_METHODS, DEFAULT_BOUNDS
from prunemip.solvers.result import SolveResult, SolveStatus

Status = Literal["sat", "unsat", "timeout", "unknown"]
Mode = Literal["decide", "optimize"]
#: HiGHS settings of a decide-mode MIP once the falsifier has searched the region: no RINS or
#: RENS sub-MIPs. They look for better incumbents; a MIP that only has to prove ``s ≤ −τ``
#: spends most of its time in them (measured: ``experiments/benchmarks/README.md``, solve
#: time). ``EngineOptions.highs.extra`` overrides these.
SEARCHED_REGION_HIGHS: dict[str, object] = {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False}


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`decide` searches."""

    mode: Mode = "decide"
    #: precomputed bounds over the region, or a method of :func:`~prunemip.solvers.bounds.compute_bounds`
    bounds: NeuronBounds | str = DEFAULT_BOUNDS
    bounds_options: ObbtOptions | None = None  #: the LP/MIP bounds stages' limits
    formulation: str = DEFAULT_FORMULATION
    highs: HighsOptions = field(default_factory=lambda: HighsOptions(threads=1))
    #: the falsifier's effort (None: skip it), on ``falsify_share`` of the budget at most
    falsify: FalsifyOptions | None = field(default_factory=FalsifyOptions)
    falsify_share: float = 1.0
    #: refute conjunctions by the cheap bounds before any search (decide mode)
    rule_out: bool = True
    #: decide mode: run branch and bound beside the surrogate and MIP stages (False: those alone)
    bab: bool = True
    surrogate: Network | None = None  #: a cheaper network whose MIPs are searched first
    robust_tolerance: float = ROBUST_TOLERANCE  #: the least τ of an "unsat" proof
    device: str = "cpu"  #: where the falsifier's and branch and bound's torch work runs
    progress: ProgressHook | None = None  #: sees each disjunct's state as the search goes


@dataclass(frozen=True)
class Outcome:
    """What is known about one disjunct."""

    status: Status
    stage: str  #: what settled it, or the last stage that ran: bounds, falsify, bab, surrogate, mip
    point: np.ndarray | None = field(
        default=None, repr=False
    )  #: the best checked point (the witness for sat)
    slack: float | None = None  #: its float64 slack
    bound: float | None = None  #: the best proven upper bound of the slack
    tolerance: float = ROBUST_TOLERANCE  #: τ of an "unsat" proof
    solve: SolveResult | None = None  #: the MIP's record, when one ran


@dataclass(frozen=True)
class Decision:
    """The answer to one :class:`Spec`: a status, and per disjunct its outcome."""

    spec: Spec
    status: Status
    outcomes: tuple[Outcome, ...]
    witness: int | None  #: the disjunct whose point satisfies it, for sat
    bounds: NeuronBounds | None  #: the final neuron bounds over the region
    model: MipModel | None  #: the encoded network, when a MIP was built
    falsified: FalsifyResult | None  #: the falsifier's run, when it ran
    bounds_seconds: float
    seconds: float
    interrupted: bool  #: Ctrl-C ended the search


def decide(
    network: Network,
    specs: Sequence[Spec],
    timeout: float,
    options: EngineOptions | None = None,
    *,
    starts: Sequence[np.ndarray] = (),
) -> list[Decision]:
    """Answer ``specs`` about ``network`` within ``timeout`` seconds, the stages of the module in turn.

    Args:
        network: the network.
        specs: the questions; a decision in decide mode ends them all once one disjunct holds.
        timeout: the budget in seconds (> 0), shared by the specs.
        options: how to search (default :class:`EngineOptions`).
        starts: input points (inside every spec's region) the falsifier and the MIPs start from.

    Returns:
        One decision per spec, in order.

    Raises:
        PrunemipError: for a non-positive timeout, an unknown bounds method or rows that do not
            match the network's outputs.
    """
    options = options or EngineOptions()
    if timeout <= 0:
        raise PrunemipError(f"the timeout must be positive, got {timeout}")
    method = options.bounds.method if isinstance(options.bounds, NeuronBounds) else options.bounds
    if method not in (*BOUNDS_METHODS, DEFAULT_BOUNDS):
        raise PrunemipError(f"unknown bounds method {method!r}; choose one of {BOUNDS_METHODS} or 'auto'")
    for spec in specs:
        if spec.n_outputs != network.n_outputs:
            raise PrunemipError(
                f"the spec constrains {spec.n_outputs} outputs; the network has {network.n_outputs}"
            )
    search = _Search(network, options, time.perf_counter(), timeout, method)
    runs = search.runs = [_Run(search, spec, list(starts)) for spec in specs]
    for stage in (_bounds_stage, _falsify_stage, _search_stage):
        if search.finished():
            break
        stage(search, runs)
    return [run.decision() for run in runs]


@dataclass
class _Search:
    """What every spec of one call shares: the network, the options and the clock."""

    network: Network
    options: EngineOptions
    start: float
    timeout: float
    method: str  #: the bounds method's name
    #: guards every run's state: branch and bound and the exact stages update it from two threads
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: set while branch and bound races the exact stages: the stage the worker thread is in
    racing: str | None = None
    abandoned: threading.Event = field(default_factory=threading.Event)  #: one racer failed
    runs: list[_Run] = field(default_factory=list)  #: one per spec

    @property
    def deadline(self) -> float:
        return self.start + self.timeout

    def remaining(self) -> float:
        return 0.0 if interrupts.requested() else self.deadline - time.perf_counter()

    def finished(self) -> bool:
        """Out of time, interrupted, abandoned, every disjunct settled, or (decide mode) one satisfied."""
        runs = self.runs
        if self.remaining() <= 0.0 or self.abandoned.is_set() or all(not run.open() for run in runs):
            return True
        return self.options.mode == "decide" and any(run.witness is not None for run in runs)

    def report(
        self,
        run: _Run,
        index: int,
        stage: str,
        open_subdomains: int | None = None,
        solver_bound: float | None = None,
    ) -> None:
        """Hand the progress hook disjunct ``index``'s state; ``solver_bound`` is a running MIP's
        dual bound, shown but not kept (only a finished solve's proof counts). While branch and
        bound races the exact stages the stage reads ``bab+mip`` (or ``bab+surrogate``) and its
        open subdomains stay shown."""
        hook = self.options.progress
        if hook is None:
            return
        with self.lock:
            if open_subdomains is not None:
                run.open_counts[index] = open_subdomains
            if self.racing is not None and stage in ("bab", "surrogate", "mip"):
                stage, open_subdomains = f"bab+{self.racing}", run.open_counts[index]
            outcome = run.outcomes[index]
            best = None if run.points[index] is None else float(run.slacks[index])
            bound = min(run.bounds_known[index], np.inf if solver_bound is None else solver_bound)
            hook(
                Progress(
                    run.spec.names[index],
                    stage if outcome is None else outcome.status,
                    time.perf_counter() - self.start,
                    best,
                    float(bound) if np.isfinite(bound) else None,
                    open_subdomains,
                    outcome is not None,
                )
            )


@dataclass
class _Run:
    """One spec's search: its bounds, model, checked points and settled disjuncts."""

    search: _Search
    spec: Spec
    starts: list[np.ndarray]
    outcomes: list[Outcome | None] = field(default_factory=list)
    points: list[np.ndarray | None] = field(default_factory=list)
    slacks: np.ndarray = field(default_factory=lambda: np.empty(0))
    bounds_known: np.ndarray = field(default_factory=lambda: np.empty(0))  #: proven slack upper bounds
    open_counts: list[int | None] = field(default_factory=list)  #: branch and bound's open subdomains
    satisfied: list[bool] = field(default_factory=list)  #: a checked point satisfies the disjunct
    answers: dict[int, tuple[ConjunctionMip, MipAnswer]] = field(default_factory=dict)
    witness: int | None = None
    bounds: NeuronBounds | None = None
    bab_root: NeuronBounds | None = None
    bab_frontiers: dict[int, BabResult] = field(default_factory=dict)  #: open searches, to resume
    model: MipModel | None = None
    falsified: FalsifyResult | None = None
    bounds_seconds: float = 0.0
    last_stage: str = ""

    def __post_init__(self) -> None:
        count = len(self.spec.disjuncts)
        self.outcomes = [None] * count
        self.points = [None] * count
        self.satisfied = [False] * count
        self.open_counts = [None] * count
        self.slacks = np.full(count, -np.inf)
        self.bounds_known = np.full(count, np.inf)

    def open(self) -> list[int]:
        return [j for j, outcome in enumerate(self.outcomes) if outcome is None]

    def check(self, x: np.ndarray, stage: str) -> bool:
        """Pull ``x`` (found by ``stage``) into the region, run the float64 forward pass, keep
        each disjunct's best point; True when it satisfies an open disjunct (in decide mode then
        settled "sat"; in optimize mode its MIP still runs, for the best point)."""
        region = self.spec.region
        point = region.project(np.asarray(x, dtype=np.float64).reshape(-1))
        outputs = self.search.network.forward(point)
        slacks = self.spec.slacks(outputs)
        with self.search.lock:
            return self._keep(point, outputs, slacks, stage)

    def _keep(self, point: np.ndarray, outputs: np.ndarray, slacks: np.ndarray, stage: str) -> bool:
        better = slacks > self.slacks
        for j in np.flatnonzero(better):
            self.points[j], self.slacks[j] = point, slacks[j]
        found = False
        for j in self.open():
            if self.spec.disjuncts[j].hold(outputs):
                if slacks[j] >= self.slacks[j]:  # a satisfying point at the best slack (ties: this one)
                    self.points[j], self.slacks[j] = point, slacks[j]
                self.satisfied[j] = found = True
                if self.witness is None:
                    self.witness = j
                if self.search.options.mode == "decide":
                    self.settle(j, "sat", stage)
                    return True
        return found

    def settle(
        self,
        j: int,
        status: Status,
        stage: str,
        tolerance: float | None = None,
        solve: SolveResult | None = None,
    ) -> None:
        """Record disjunct ``j``'s final outcome from what is known of it, and report it; the
        first settling stands (a racing stage may settle it again a moment later)."""
        with self.search.lock:
            if self.outcomes[j] is not None:
                return
            self.outcomes[j] = self.outcome(j, status, stage, tolerance, solve)
            self.search.report(self, j, stage)

    def outcome(
        self, j: int, status: Status, stage: str, tolerance: float | None, solve: SolveResult | None
    ) -> Outcome:
        point = self.points[j]
        bound = self.bounds_known[j]
        return Outcome(
            status,
            stage,
            point,
            None if point is None else float(self.slacks[j]),
            float(bound) if np.isfinite(bound) else None,
            self.search.options.robust_tolerance if tolerance is None else tolerance,
            solve,
        )

    def know_bound(self, j: int, bound: float | None) -> None:
        if bound is not None and np.isfinite(bound):
            with self.search.lock:
                self.bounds_known[j] = min(self.bounds_known[j], bound)

    def rule_out(self, stage: str) -> None:
        """Settle "unsat" every open disjunct whose rows the current bounds refute by ``≥ τ``."""
        assert self.bounds is not None
        tolerance = self.search.options.robust_tolerance
        for j in self.open():
            self.know_bound(j, _slack_upper_bound(self.search.network, self.spec, j, self.bounds))
            if self.bounds_known[j] <= -tolerance:
                self.settle(j, "unsat", stage, tolerance=tolerance)

    def decision(self) -> Decision:
        search = self.search
        interrupted = interrupts.requested()
        outcomes = []
        for j, outcome in enumerate(self.outcomes):
            if outcome is None:
                answer = self.answers.get(j)
                status: Status = "sat" if self.satisfied[j] else "timeout"
                if answer is not None and not interrupted and not self.satisfied[j]:
                    status = verdict(answer[1].solve, answer[1].tolerance)
                if answer is None:
                    outcome = self.outcome(j, status, self.last_stage, None, None)
                else:
                    outcome = self.outcome(j, status, "mip", answer[1].tolerance, answer[1].solve)
            outcomes.append(outcome)
        statuses = [o.status for o in outcomes]
        if "sat" in statuses:
            status: Status = "sat"
        elif all(s == "unsat" for s in statuses):
            status = "unsat"
        else:
            status = "timeout" if "timeout" in statuses else "unknown"
        return Decision(
            self.spec,
            status,
            tuple(outcomes),
            self.witness,
            self.bounds,
            self.model,
            self.falsified,
            self.bounds_seconds,
            time.perf_counter() - search.start,
            interrupted,
        )


def _slack_upper_bound(network: Network, spec: Spec, j: int, bounds: NeuronBounds) -> float:
    """A sound upper bound of disjunct ``j``'s slack ``min_k (d_k − c_k·y)`` over the region:
    ``min_k (d_k − lb(c_k·y))``, ``lb`` the better of the output intervals summed per output
    and the linear relaxation of ``c_k·y`` itself (both sound)."""
    rows = spec.disjuncts[j]
    last = len(network.layers) - 1
    low, high = bounds.post_activation(last)
    C = rows.coefficients
    lower = np.sum(np.minimum(C * low, C * high), axis=1)
    upper = output_upper_bounds(network, spec.region, bounds, -C)
    if upper is not None:
        lower = np.maximum(lower, -upper)
    return float(np.min(rows.rhs - lower))


def _bounds_stage(search: _Search, runs: list[_Run]) -> None:
    """The cheap bounds per spec; in decide mode, refute what they can."""
    options = search.options
    for run in runs:
        if isinstance(options.bounds, NeuronBounds):
            run.bounds = options.bounds
        else:
            cheap = search.method if search.method in ("ia", "linear", "alpha") else "linear"
            run.bounds = compute_bounds(search.network, run.spec.region, cheap)
        run.bounds_seconds = run.bounds.seconds
        run.last_stage = "bounds"
        if options.mode == "decide" and options.rule_out:
            run.rule_out("bounds")


def _falsify_stage(search: _Search, runs: list[_Run]) -> None:
    """The falsifier on every open disjunct, one batch per spec, on ``falsify_share`` of the budget."""
    options = search.options
    if options.falsify is None:
        return
    deadline = min(search.start + options.falsify_share * search.timeout, search.deadline)
    pending = [run for run in runs if run.open() and np.any(run.spec.region.upper > run.spec.region.lower)]
    for index, run in enumerate(pending):
        now = time.perf_counter()
        if now >= deadline or search.remaining() <= 0:
            return
        open_disjuncts = run.open()
        run.last_stage = "falsify"
        for j in open_disjuncts:
            search.report(run, j, "falsify")
        result = falsify(
            search.network,
            run.spec.region,
            [run.spec.disjuncts[j] for j in open_disjuncts],
            options.falsify,
            starts=run.starts,
            deadline=now + (deadline - now) / (len(pending) - index),
            device=options.device,
            stop_at_first=options.mode == "decide",
        )
        run.falsified = result
        for k in np.argsort(-result.slacks, kind="stable"):
            point = result.points[k]
            if point is not None:
                run.starts.append(point)
                run.check(point, "falsify")
        if options.mode == "decide" and run.witness is not None:
            return


def _search_stage(search: _Search, runs: list[_Run]) -> None:
    """Branch and bound beside the exact stages (decide mode, when it applies), else those alone."""
    options = search.options
    identity = search.network.layers[-1].activation == "identity"
    if options.mode != "decide" or not options.bab or not identity:
        _exact_stages(search, runs)
        return
    failures: list[BaseException] = []

    def exact() -> None:
        try:
            _exact_stages(search, runs)
        except BaseException as error:  # handed to the calling thread, which re-raises it
            failures.append(error)
            search.abandoned.set()

    worker = threading.Thread(target=exact, name="prunemip-exact-stages", daemon=True)
    search.racing = "mip"
    worker.start()
    try:
        _bab_stage(search, runs)
        worker.join()
    except BaseException:
        search.abandoned.set()  # the worker's stages poll it and return
        worker.join()
        raise
    finally:
        search.racing = None
    if failures:
        raise failures[0]


def _exact_stages(search: _Search, runs: list[_Run]) -> None:
    """The surrogate's MIPs, the MIPs, and the re-solves of what those left "unknown", in turn."""
    for stage, name in ((_surrogate_stage, "surrogate"), (_mip_stage, "mip"), (_settle_stage, "mip")):
        if search.finished():
            return
        if search.racing is not None:
            search.racing = name
        stage(search, runs)


def _bab_stage(search: _Search, runs: list[_Run]) -> None:
    """Branch and bound on each open disjunct in turn, until it or a racing stage settles it."""
    _in_passes(search, runs, _bab_on)


#: One attempt at disjunct ``j`` of a run on ``1/sharing`` of the time left; True when its share
#: ran out with the disjunct still open.
Attempt = Callable[["_Search", "_Run", int, int], bool]


def _in_passes(search: _Search, runs: list[_Run], attempt: Attempt) -> None:
    """``attempt`` on each open disjunct in turn, an even share of the time left each, in
    passes: the disjuncts whose share ran out get another attempt on the time that the ones
    settled meanwhile (by this stage or a racing one) left over."""
    pending = [(run, j) for run in runs for j in run.open()]
    while pending:
        stopped = []
        for index, (run, j) in enumerate(pending):
            if search.finished():
                return
            if run.outcomes[j] is None and attempt(search, run, j, len(pending) - index):
                stopped.append((run, j))
        pending = stopped


def _bab_on(search: _Search, run: _Run, j: int, sharing: int) -> bool:
    """Branch and bound on disjunct ``j`` for ``1/sharing`` of the time left; True when its
    time ran out with the disjunct open."""
    options = search.options
    network = search.network
    began, share = time.perf_counter(), search.remaining() / sharing
    bab = BabOptions(time_limit=share, highs=options.highs, device=options.device)
    search.report(run, j, "bab")
    if run.bab_root is None:
        run.bab_root = root_bounds(network, run.spec.region, run.bounds, bab)
    bab = replace(bab, time_limit=max(began + share - time.perf_counter(), 1e-3))

    def on_step(open_count: int, bound: float, best: float) -> None:
        run.know_bound(j, -bound)
        search.report(run, j, "bab", open_subdomains=open_count)

    def settled_elsewhere() -> bool:
        return run.outcomes[j] is not None or search.finished()

    result = branch_and_bound(
        network,
        run.spec.region,
        run.spec.disjuncts[j],
        bab,
        bounds=run.bab_root,
        on_step=on_step,
        cancel=settled_elsewhere,
        resume=run.bab_frontiers.pop(j, None),
    )
    run.know_bound(j, -result.bound)
    if result.status == "found" and result.x is not None:
        run.check(result.x, "bab")
    elif result.status == "refuted":
        run.settle(j, "unsat", "bab")
    stopped = run.outcomes[j] is None and result.status == "open" and result.seconds >= bab.time_limit
    if stopped:  # the next pass carries on from here
        run.bab_frontiers[j] = result
    return stopped


def _surrogate_stage(search: _Search, runs: list[_Run]) -> None:
    """Half the time left on the surrogate's MIPs, incumbents checked on the network."""
    options = search.options
    if options.surrogate is None:
        return
    deadline = time.perf_counter() + search.remaining() / 2
    pending = [run for run in runs if run.open()]
    for index, run in enumerate(pending):
        if search.finished():
            return
        now = time.perf_counter()
        run.last_stage = "surrogate"
        for j in run.open():
            search.report(run, j, "surrogate")
        found = search_surrogate(
            options.surrogate,
            run.spec,
            run.open(),
            functools.partial(run.check, stage="surrogate"),
            now + (deadline - now) / (len(pending) - index),
            bounds=search.method if isinstance(options.bounds, str) else DEFAULT_BOUNDS,
            highs=options.highs,
            starts=run.starts,
            cancel=search.finished,
        ).found
        if found is not None and options.mode == "decide":
            return


def _mip_stage(search: _Search, runs: list[_Run]) -> None:
    """Each open disjunct's MIP in turn (its spec's tighter bounds and encoding once, before the
    first), in passes: a MIP stopped by its share's limit is solved again, from its best point."""
    highs = search.options.highs
    if search.options.mode == "decide" and any(run.falsified is not None for run in runs):
        highs = replace(highs, extra={**SEARCHED_REGION_HIGHS, **highs.extra})
    _in_passes(search, runs, functools.partial(_mip_on, highs=highs))


def _mip_on(search: _Search, run: _Run, j: int, sharing: int, *, highs: HighsOptions) -> bool:
    """Disjunct ``j``'s MIP for ``1/sharing`` of the time left (again from its best point, with
    the earlier solves' effort, when it ran before); True when its time ran out with the
    disjunct open. The spec's first MIP encodes it first (and refutes what the tighter bounds
    refute, in decide mode)."""
    if run.model is None:
        run.model = _encoded(search, run)
        if search.options.mode == "decide" and search.options.rule_out:
            run.rule_out("bounds")
        if run.outcomes[j] is not None or search.finished():
            return False
    deadline = time.perf_counter() + search.remaining() / sharing
    run.last_stage = "mip"
    search.report(run, j, "mip")
    if j in run.answers:
        _solve_again(search, run, j, highs, deadline)
    else:
        points = [run.spec.region.midpoint, *run.starts]
        mip = ConjunctionMip.of(run.model, run.spec.disjuncts[j], points, search.options.robust_tolerance)
        _record_answer(run, j, mip, _solve(search, run, j, mip, highs, deadline))
    return run.outcomes[j] is None and run.answers[j][1].solve.status == SolveStatus.TIME_LIMIT


def _settle_stage(search: _Search, runs: list[_Run]) -> None:
    """Solve the disjuncts HiGHS left "unknown" again under tighter tolerances while time lasts."""
    tighter = search.options.highs.tightened()
    if tighter is None:
        return
    for run in runs:
        for j in run.open():
            if search.finished():
                return
            if j not in run.answers or run.outcomes[j] is not None:
                continue
            first = run.answers[j][1]
            if verdict(first.solve, first.tolerance) == "unknown":
                _solve_again(search, run, j, tighter, search.deadline)


def _solve_again(search: _Search, run: _Run, j: int, highs: HighsOptions, deadline: float) -> None:
    """Disjunct ``j``'s MIP once more under ``highs``, from its best point; the record keeps
    the earlier solves' effort."""
    mip, earlier = run.answers[j]
    point = run.points[j]
    start = None if point is None else mip.solution(point)
    answer = _solve(search, run, j, mip, highs, deadline, start=start)
    _record_answer(run, j, mip, replace(answer, solve=combined(earlier.solve, answer.solve)))


def _record_answer(run: _Run, j: int, mip: ConjunctionMip, answer: MipAnswer) -> None:
    """Record disjunct ``j``'s solve, unless it was settled meanwhile (satisfied, or by branch and
    bound); its proof settles it "unsat"."""
    if run.outcomes[j] is not None:
        return
    run.answers[j] = (mip, answer)
    if answer.proved:
        run.settle(j, "unsat", "mip", tolerance=answer.tolerance, solve=answer.solve)


def _solve(
    search: _Search,
    run: _Run,
    j: int,
    mip: ConjunctionMip,
    highs: HighsOptions,
    deadline: float,
    *,
    start: np.ndarray | None = None,
) -> MipAnswer:
    """One solve of disjunct ``j``'s MIP until it is settled elsewhere or the search is finished;
    a confirmed incumbent settles it "sat" with the record."""

    def on_bounds(incumbent: float | None, dual: float | None) -> None:
        search.report(run, j, "mip", solver_bound=dual)

    decide_mode = search.options.mode == "decide"
    answer = mip.solve(
        highs,
        min(deadline, search.deadline),
        decide=decide_mode,
        stop=decide_mode,
        check=functools.partial(run.check, stage="mip"),
        start=start,
        on_bounds=on_bounds if search.options.progress is not None else None,
        cancel=lambda: run.outcomes[j] is not None or search.finished(),
    )
    run.know_bound(j, answer.solve.dual_bound if answer.proved else None)
    if not decide_mode and run.satisfied[j] and run.outcomes[j] is None:
        run.settle(j, "sat", "mip", tolerance=answer.tolerance, solve=answer.solve)
    with search.lock:
        outcome = run.outcomes[j]
        if outcome is not None and outcome.status == "sat" and outcome.stage == "mip":
            run.outcomes[j] = replace(  # the best point of the solve, with its record
                outcome,
                point=run.points[j],
                slack=float(run.slacks[j]),
                tolerance=answer.tolerance,
                solve=answer.solve,
            )
    return answer


def _encoded(search: _Search, run: _Run) -> MipModel:
    """The expensive bounds stages (when the method has them), then the big-M encoding."""
    assert run.bounds is not None
    options = search.options
    bounds = run.bounds
    if (
        isinstance(options.bounds, str)
        and search.method not in ("ia", "linear")
        and bounds.method == "linear"
    ):
        bounds = continue_bounds(
            search.network,
            run.spec.region,
            bounds,
            search.method,
            options=replace(options.bounds_options or ObbtOptions(), cancel=search.finished),
            time_limit=max(search.remaining(), 0.0),
            points=run.starts,
        )
        run.bounds = bounds
        run.bounds_seconds = bounds.seconds
    return encode(search.network, run.spec.region, bounds, formulation=options.formulation)
