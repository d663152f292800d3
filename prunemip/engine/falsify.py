"""One falsifier for attacks and VNN-LIB properties: batched multi-restart PGD in torch.

The question: is there an ``x`` in the input region ``R`` (a box, or an L∞ or L1 ball ∩ box)
whose outputs ``y = f(x)`` satisfy a conjunction of rows ``C·y ≤ d`` (``<`` for strict rows)?
That is the counterexample condition of one VNN-LIB disjunct
(:class:`~prunemip.engine.subdomains.OutputRows`, as branch and bound takes it); an attack on
target ``t`` over the label ``ℓ`` is the one strict row ``y_ℓ − y_t < 0``
(:func:`~prunemip.engine.spec.margin_rows`), whose slack ``d − C·y`` is the margin ``y_t − y_ℓ``.
The falsifier maximises the smallest slack ``s(x) = min_k (d_k − c_k·f(x))`` over ``R``, for
several conjunctions at once (the disjuncts of a property over one box, the targets of an
attack): each row of the batch climbs one conjunction's ``s``.

* Starts: the region's centre and any given points, uniform random points
  (:meth:`InputRegion.sample <prunemip.regions.InputRegion.sample>`) and output-diversified
  ones: random points moved by a few steps up ``wᵀf(x)`` for a random ``w ∈ U(−1, 1)^m`` per
  row (ODS; Tashiro, Song & Ermon, "Diversity can be Transferred: Output Diversification for
  White- and Black-box Attacks", NeurIPS 2020).
* Steps: APGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
  of diverse parameter-free attacks", ICML 2020): ``z = Π(x_k + η d_k)`` and
  ``x_{k+1} = Π(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))`` with momentum ``α = 0.75``,
  ``d_k`` the steepest-ascent direction of ``∇s`` in the region's norm
  (:meth:`~prunemip.regions.InputRegion.steepest_ascent`) and ``Π`` the Euclidean projection
  (:meth:`~prunemip.regions.InputRegion.nearest`). ``η`` starts at twice the region's step
  scale (:class:`~prunemip.regions.Ascent`) and is halved at the checkpoints
  ``w_j = ⌈p_j N⌉`` (``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03,
  0.06)``) for every row whose ``s`` rose in fewer than 75 % of the steps since the previous
  checkpoint, or whose step was not halved there and whose best ``s`` has not risen since;
  such a row goes back to its best point.
* Gradients: reverse mode in torch (float32 or float64, CPU or CUDA); the points stay float64
  numpy arrays, so the region's own maths projects them.
* Re-check: every iterate whose ``s ≥ 0`` in the working precision, every start and every
  row's best point go through the float64 forward pass of the :class:`~prunemip.network.Network`,
  after being pulled exactly into the region (:meth:`~prunemip.regions.InputRegion.project`);
  a conjunction is satisfied only where its rows hold there (strict rows strictly), and every
  slack reported is that forward pass's at the point reported.

Batches of restarts run until a conjunction is satisfied (when asked to stop there), the
restart budget is spent or the deadline passes. torch is imported on the first call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from prunemip import interrupts
from prunemip.devices import check_device
from prunemip.engine.subdomains import OutputRows
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import L1_STEP_FRACTION, Ascent, InputRegion

if TYPE_CHECKING:
    import torch

Precision = Literal["float32", "float64"]
#: APGD's momentum α and the fraction ρ of rising steps below which a checkpoint halves η.
MOMENTUM = 0.75
RISING_FRACTION = 0.75


@dataclass(frozen=True)
class FalsifyOptions:
    """How much effort the falsifier spends, and in which precision."""

    steps: int = 100  #: APGD steps per start (``N``)
    batch: int = 8  #: starts per conjunction run at once
    restarts: int = 8  #: the restart budget: starts per conjunction over all batches
    ods_steps: int = 2  #: output-diversification steps of half the random starts (0: none)
    precision: Precision = "float32"  #: torch dtype of the forward and backward passes
    l1_coordinates: float = L1_STEP_FRACTION  #: fraction of coordinates an L1 step moves (see Ascent)
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.steps, self.ods_steps) < 0 or min(self.batch, self.restarts) < 1:
            raise PrunemipError(
                "the falsifier needs steps >= 0, ods_steps >= 0, batch >= 1 and restarts >= 1, got "
                f"{self.steps}, {self.ods_steps}, {self.batch} and {self.restarts}"
            )
        if self.precision not in ("float32", "float64"):
            raise PrunemipError(f"unknown precision {self.precision!r}; choose float32 or float64")


#: The effort of verify's falsification: more starts, as a property may be satisfied only in small
#: parts of its box (an attack's defaults are a cheap first look before the MIP).
VERIFY_EFFORT = FalsifyOptions(batch=16, restarts=64)


@dataclass(frozen=True)
class FalsifyResult:
    """Per conjunction the best point seen and its float64 slack; the one satisfied, if any."""

    #: per conjunction the point of largest float64 slack seen (for ``found``: its satisfying point)
    points: tuple[np.ndarray | None, ...] = field(repr=False)
    slacks: np.ndarray  #: the float64 forward pass's smallest slack at each point (−inf: none)
    found: int | None  #: a conjunction whose point satisfies it in float64
    moved: bool  #: whether that point came from gradient steps (PGD or ODS) rather than a start
    restarts: int  #: starts run per conjunction
    seconds: float


class _Torch:
    """The network and the conjunctions' rows as torch tensors; ``s`` and its gradient."""

    def __init__(self, network: Network, conjunctions: Sequence[OutputRows], precision: str, device: str):
        import torch

        self.torch = torch
        self.dtype = getattr(torch, precision)
        self.device = torch.device(device)
        self.layers = [
            (self.tensor(layer.weight.T.toarray()), self.tensor(layer.bias), layer.activation == "relu")
            for layer in network.layers
        ]
        self.rows = self.tensor(np.vstack([c.coefficients for c in conjunctions]))
        self.rhs = self.tensor(np.concatenate([c.rhs for c in conjunctions]))
        self.owner = np.repeat(np.arange(len(conjunctions)), [len(c.rhs) for c in conjunctions])

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        """``values`` in the working dtype on the device."""
        return self.torch.as_tensor(np.ascontiguousarray(values), dtype=self.dtype, device=self.device)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` per row."""
        for weight, bias, relu in self.layers:
            x = self.torch.addmm(bias, x, weight)
            if relu:
                x = x.clamp_min(0.0)
        return x

    def mask(self, owners: np.ndarray) -> torch.Tensor:
        """Per batch row, which of the stacked rows are its conjunction's."""
        return self.torch.as_tensor(owners[:, None] == self.owner[None, :], device=self.device)

    def slack(self, x: np.ndarray, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``s`` of each row's own conjunction (``mask``) and ``∇s``, as float64 arrays."""
        point = self.tensor(x).requires_grad_(True)
        slacks = self.rhs - self.outputs(point) @ self.rows.T
        smallest = self.torch.where(mask, slacks, self.torch.inf).amin(dim=1)
        (gradient,) = self.torch.autograd.grad(smallest.sum(), point)
        return _float64(smallest), _float64(gradient)

    def output_gradient(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``∇(wᵀf(x))`` per row (the direction of an output-diversified step), as float64."""
        point = self.tensor(x).requires_grad_(True)
        (gradient,) = self.torch.autograd.grad((self.outputs(point) * self.tensor(weights)).sum(), point)
        return _float64(gradient)


def _float64(values: torch.Tensor) -> np.ndarray:
    return values.detach().cpu().numpy().astype(np.float64)


@dataclass
class _Record:
    """The float64 re-check: per conjunction the best point, and the first one satisfied."""

    network: Network
    region: InputRegion
    conjunctions: Sequence[OutputRows]
    points: list[np.ndarray | None]
    slacks: np.ndarray
    found: int | None = None
    moved: bool = False

    def offer(self, x: np.ndarray, owners: np.ndarray, moved: np.ndarray) -> bool:
        """Re-check the rows of ``x`` (row ``i`` a point for conjunction ``owners[i]``) at their exact
        projections; whether a conjunction is satisfied.

        A batched forward pass picks each conjunction's candidate (its best satisfying row, else
        its best row); the decision (:meth:`OutputRows.hold`, VNN-LIB's semantics) and the slack
        kept come from the candidate's own forward pass, as every witness is checked."""
        points = np.array([self.region.project(p) for p in x])
        batch_outputs = self.network.forward(points).reshape(len(points), -1)
        for index in np.unique(owners):
            conjunction = self.conjunctions[index]
            rows = np.flatnonzero(owners == index)
            slacks = conjunction.rhs - batch_outputs[rows] @ conjunction.coefficients.T
            holds = np.all(np.where(conjunction.strict, slacks > 0.0, slacks >= 0.0), axis=1)
            slack = np.min(slacks, axis=1)
            satisfying = self.found == index or (self.found is None and bool(np.any(holds)))
            eligible = holds if satisfying else np.ones(len(rows), dtype=bool)
            if not np.any(eligible):
                continue
            row = rows[np.flatnonzero(eligible)[np.argmax(slack[eligible])]]
            outputs = self.network.forward(points[row])
            value, holding = float(-conjunction.violation(outputs)[0]), conjunction.hold(outputs)
            if self.found is None and holding:
                self.found, self.moved = int(index), bool(moved[row])
            elif value <= self.slacks[index] or (self.found == index and not holding):
                continue
            self.points[index], self.slacks[index] = points[row], value
        return self.found is not None


def checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints ``w_j = ⌈p_j N⌉``, ``0 < w_j ≤ N = steps`` (Croce & Hein, ICML 2020).

    ``p_0 = 0``, ``p_1 = 0.22`` and ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``.

    Args:
        steps: the number of steps ``N``.

    Returns:
        The checkpoints, increasing.
    """
    fractions = [0.0, 0.22]
    while fractions[-1] < 1.0:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    return sorted({c for c in (math.ceil(round(p * steps, 9)) for p in fractions[1:]) if 0 < c <= steps})


def falsify(
    network: Network,
    region: InputRegion,
    conjunctions: Sequence[OutputRows],
    options: FalsifyOptions | None = None,
    *,
    starts: Sequence[np.ndarray] = (),
    deadline: float | None = None,
    device: str = "cpu",
    stop_at_first: bool = True,
) -> FalsifyResult:
    """Look for a point of ``region`` that satisfies one of ``conjunctions`` (see the module docstring).

    The first batch's starts are always evaluated; further batches run while the restart budget
    and the deadline last.

    Args:
        network: the network.
        region: the input region.
        conjunctions: the output conditions, searched in one batch.
        options: the effort (default :class:`FalsifyOptions`).
        starts: points that start a chain for every conjunction in the first batch, besides the
            region's centre (pulled into the region first).
        deadline: a ``time.perf_counter()`` after which no further step starts.
        device: ``"cpu"`` or ``"cuda"`` (:func:`check_device`).
        stop_at_first: return as soon as a conjunction is satisfied; else spend the budget on
            every conjunction's best point.

    Returns:
        Per conjunction its best point and float64 slack, and the conjunction satisfied, if any.
    """
    options = options or FalsifyOptions()
    clock = time.perf_counter()
    check_device(device)
    slacks = np.full(len(conjunctions), -np.inf)
    record = _Record(network, region, conjunctions, [None] * len(conjunctions), slacks)
    fixed = np.array([region.midpoint, *(region.project(p) for p in starts)])
    rng = np.random.default_rng(options.seed)
    model = _Torch(network, conjunctions, options.precision, device) if conjunctions else None
    done = 0
    while model is not None and (done == 0 or (done < options.restarts and not _late(deadline))):
        first = fixed if done == 0 else fixed[:0]
        count = max(min(options.batch, options.restarts - done), len(first))
        stop = _Batch(model, record, options, deadline).run(first, count, rng, stop_at_first)
        done += count
        if stop:
            break
    seconds = time.perf_counter() - clock
    return FalsifyResult(tuple(record.points), record.slacks, record.found, record.moved, done, seconds)


def _late(deadline: float | None) -> bool:
    """Past ``deadline``, or asked to stop by Ctrl-C (:mod:`prunemip.interrupts`)."""
    return interrupts.requested() or (deadline is not None and time.perf_counter() > deadline)


@dataclass
class _Batch:
    """One batch of starts per conjunction and their APGD chains."""

    model: _Torch
    record: _Record
    options: FalsifyOptions
    deadline: float | None

    def run(self, fixed: np.ndarray, count: int, rng: np.random.Generator, stop_at_first: bool) -> bool:
        """``count`` starts per conjunction (``fixed`` first, then random and ODS ones), then APGD.

        Returns:
            Whether to stop: a conjunction is satisfied and ``stop_at_first``.
        """
        region, n_conj = self.record.region, len(self.record.conjunctions)
        ascent = Ascent.of(region, self.options.l1_coordinates)
        step = 2.0 * ascent.scale
        n_random = count - len(fixed)
        x = np.vstack([np.vstack([fixed, region.sample(rng, n_random)]) for _ in range(n_conj)])
        owners = np.repeat(np.arange(n_conj), count)
        diversified = step > 0.0 and self.options.ods_steps > 0
        moved = np.tile(np.arange(count) >= count - n_random // 2, n_conj) & diversified
        if np.any(moved):
            weights = rng.uniform(-1.0, 1.0, size=(int(moved.sum()), self.record.network.n_outputs))
            for _ in range(self.options.ods_steps):
                gradient = self.model.output_gradient(x[moved], weights)
                x[moved] = region.nearest(
                    x[moved] + step * region.steepest_ascent(gradient, ascent.coordinates)
                )
        if self.record.offer(x, owners, moved) and stop_at_first:
            return True
        if step <= 0.0 or self.options.steps == 0 or _late(self.deadline):
            return False
        return self._ascend(x, owners, moved, step, ascent.coordinates, stop_at_first)

    def _ascend(
        self,
        x: np.ndarray,
        owners: np.ndarray,
        moved: np.ndarray,
        step: float,
        coordinates: int,
        stop_at_first: bool,
    ) -> bool:
        """APGD from the rows of ``x`` (module docstring); whether to stop."""
        region, record = self.record.region, self.record
        mask = self.model.mask(owners)
        value, gradient = self.model.slack(x, mask)
        best_x, best_value, best_gradient, best_moved = x.copy(), value.copy(), gradient.copy(), moved.copy()
        eta = np.full(len(x), step)
        previous = x
        rising = np.zeros(len(x))
        last, best_at_last, halved = 0, best_value.copy(), np.zeros(len(x), dtype=bool)
        marks = set(checkpoints(self.options.steps))
        for k in range(1, self.options.steps + 1):
            z = region.nearest(x + eta[:, None] * region.steepest_ascent(gradient, coordinates))
            if k > 1:
                z = region.nearest(x + MOMENTUM * (z - x) + (1.0 - MOMENTUM) * (x - previous))
            previous, x = x, z
            new_value, gradient = self.model.slack(x, mask)
            rising += new_value > value
            value = new_value
            better = value > best_value
            best_x[better], best_value[better] = x[better], value[better]
            best_gradient[better] = gradient[better]
            best_moved |= better
            if stop_at_first and np.any(value >= 0.0):
                rows = np.flatnonzero(value >= 0.0)
                if record.offer(x[rows], owners[rows], np.ones(rows.size, dtype=bool)):
                    return True
            if k in marks:
                stalled = (rising < RISING_FRACTION * (k - last)) | (~halved & (best_value <= best_at_last))
                eta[stalled] /= 2.0
                x[stalled], value[stalled] = best_x[stalled], best_value[stalled]
                gradient[stalled], previous[stalled] = best_gradient[stalled], best_x[stalled]
                rising[:] = 0.0
                last, best_at_last, halved = k, best_value.copy(), stalled
            if _late(self.deadline):
                break
        return record.offer(best_x, owners, best_moved) and stop_at_first
