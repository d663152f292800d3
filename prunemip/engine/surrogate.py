"""Search a cheaper network's MIP, check every incumbent on the network that counts.

Pham, Ren, Tahir, Tong, Serra ("Optimization over Trained Neural Networks: Taking a Relaxing
Walk", arXiv 2505.01985, 2025) search a pruned copy of a network for adversarial inputs: its
MIP is smaller, and an input it finds is often adversarial for the original too. Here the
surrogate's MIP maximises one disjunct's slack at a time (optimize mode: a surrogate's proof
says nothing about the original), every incumbent's input goes through the caller's check
(the original's float64 forward pass), and the search stops at the first one confirmed.
Used by the engine (``verify --surrogate-sparsity``: a magnitude-pruned copy) and by the
study's surrogate runs (a trained pruned model against its dense one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from prunemip.encoders.bigm import encode
from prunemip.engine.mip import ConjunctionMip
from prunemip.engine.spec import Spec
from prunemip.network import Network
from prunemip.solvers.bounds import compute_bounds
from prunemip.solvers.highs import HighsOptions
from prunemip.solvers.result import SolveStatus


@dataclass(frozen=True)
class SurrogateSearch:
    """What the surrogate's MIPs handed over."""

    found: int | None  #: the disjunct whose MIP handed over an input the check confirmed
    checked: int  #: incumbents offered to the check
    status: SolveStatus | None  #: the last surrogate MIP's status (None: none was solved)
    seconds: float


def search_surrogate(
    surrogate: Network,
    spec: Spec,
    disjuncts: Sequence[int],
    check: Callable[[np.ndarray], bool],
    deadline: float,
    *,
    bounds: str,
    highs: HighsOptions,
    starts: Sequence[np.ndarray] = (),
    cancel: Callable[[], bool] | None = None,
) -> SurrogateSearch:
    """Maximise each of ``disjuncts``' slack on the surrogate's MIP in turn until ``check`` confirms an input.

    Args:
        surrogate: the cheaper network whose MIP is solved.
        spec: the question (its region is the surrogate's region too).
        disjuncts: the indices of the disjuncts to search, in order; the time left is split
            evenly, what one leaves over goes to the next.
        check: the original network's check of an input of the region; True ends the search.
        deadline: a ``time.perf_counter()`` value, the bounds' time included.
        bounds: the method of :func:`~prunemip.solvers.bounds.compute_bounds` for the surrogate.
        highs: HiGHS settings (the time limit is replaced by each MIP's share).
        starts: input points to start the MIPs from (the region's midpoint always is one).
        cancel: polled while the MIPs run; True ends the search (another stage settled it).

    Returns:
        Which disjunct's MIP handed over a confirmed input (if any), how many inputs were
        checked and the last MIP's status.
    """
    start = time.perf_counter()
    region = spec.region
    checked = [0]

    def counted(x: np.ndarray) -> bool:
        checked[0] += 1
        return check(x)

    status = None
    found = None
    if disjuncts and time.perf_counter() < deadline:
        neuron_bounds = compute_bounds(surrogate, region, bounds, time_limit=max(deadline - start, 1e-3))
        model = encode(surrogate, region, neuron_bounds)
        points = [region.midpoint, *starts]
        for index, disjunct in enumerate(disjuncts):
            now = time.perf_counter()
            if now >= deadline or (cancel is not None and cancel()):
                break
            share = now + (deadline - now) / (len(disjuncts) - index)
            mip = ConjunctionMip.of(model, spec.disjuncts[disjunct], points, floor=0.0)
            answer = mip.solve(highs, share, decide=False, stop=True, check=counted, cancel=cancel)
            status = answer.solve.status
            if answer.confirmed:
                found = disjunct
                break
    return SurrogateSearch(found, checked[0], status, time.perf_counter() - start)
