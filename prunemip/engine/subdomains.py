"""Subdomains of branch and bound over ReLU splits: their bounds and the branching choice.

A query is a network ``f``, an input region ``R`` and a conjunction of output rows
``C y ≤ d`` (some strict): a counterexample is an ``x ∈ R`` with ``c_k·f(x) ≤ d_k`` for
every ``k``. Branch and bound minimises ``v(x) = max_k (c_k·f(x) − d_k)``: ``v(x) ≤ 0`` at
a counterexample (``< 0`` on strict rows), and a subdomain is refuted once some row's sound
lower bound of ``c_k·y`` exceeds ``d_k`` over it (reaches it on a strict row).

A subdomain is ``R`` with a set of ReLU splits: neuron ``j`` of layer ``k`` active
(``ẑ_j ≥ 0``) or inactive (``ẑ_j ≤ 0``). Its bounds: the parent's, with the split neuron's
pre-activation bounds clamped to ``[max(l, 0), u]`` or ``[l, min(u, 0)]`` (so its ReLU is
exact: ``h = ẑ`` or ``h = 0``), then the later layers' bounds of the unstable and split
neurons recomputed by the linear relaxation (CROWN, :func:`~prunemip.encoders.bounds.linear.
backward_bound`) and intersected with the parent's, so every split survives; finally the
rows' lower bounds ``−max(−c_k·y)``. Layer ``k``'s bounds only use the splits of layers
below ``k``, so they hold on every point of the region that satisfies those splits; clamped
bounds hold on the subdomain. A lower bound above an upper bound proves the subdomain empty.
The concretisation point of each row's bound (the region's maximiser of the input
coefficients ``G_0``) is a cheap witness candidate.

Branching (which unstable neuron to split):

* BaBSR (Bunel, Lu, Turkaslan, Torr, Kohli, Kumar, "Branch and Bound for Piecewise Linear
  Neural Network Verification", JMLR 2020, §5.1): with ``λ_j`` the coefficient of ``h_j`` in
  the lower bound of the row closest to refutation (``−G`` of the upper-bound pass), the
  chord ``a = u/(u − l)``, intercept ``t = −a l`` and the bias ``b_j`` of ``ẑ_j``, the score
  ``|max(λ_j b_j (a_j − 1), λ_j b_j a_j) + min(λ_j, 0) t_j|``: the bound's estimated change
  when the neuron's relaxation is removed (the bias term for either side, the intercept the
  upper line adds); the intercept part ``min(λ_j, 0) t_j`` alone is the fallback when every
  score is negligible.
* FSB (De Palma, Bunel, Desmaison, Dvijotham, Kohli, Torr, Kumar, "Improved Branch and
  Bound for Neural Network Verification via Lagrangian Decomposition", ICLR 2021 workshop /
  arXiv 2104.06718, "filtered smart branching"): the top-``k`` candidates of each score are
  re-bounded on both sides (the split neuron clamped, intermediate bounds kept) and the one
  whose worse child bound is highest is split.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from prunemip.encoders.bounds.linear import backward_bound, relu_relaxation
from prunemip.engine.beta import Parameters
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion

#: BaBSR scores below this count as uninformative (the intercept score decides then).
SCORE_FLOOR = 1e-8


@dataclass(frozen=True, eq=False)
class OutputRows:
    """A conjunction of rows ``c_k·y ≤ d_k`` (``<`` where ``strict``) on the outputs ``y``."""

    coefficients: np.ndarray  #: ``C``, shape ``(rows, n_outputs)``
    rhs: np.ndarray  #: ``d``, shape ``(rows,)``
    strict: np.ndarray  #: bool per row

    @classmethod
    def create(
        cls, coefficients: np.ndarray, rhs: np.ndarray, strict: np.ndarray | Sequence[bool] | None = None
    ) -> OutputRows:
        """Validated rows.

        Args:
            coefficients: ``C``, one row per constraint (a 1-D array is one row).
            rhs: ``d``, one value per row.
            strict: which rows are strict (default none).

        Returns:
            The rows, as float64 and bool arrays.

        Raises:
            PrunemipError: on mismatched shapes, no rows or non-finite values.
        """
        C = np.atleast_2d(np.asarray(coefficients, dtype=np.float64))
        d = np.atleast_1d(np.asarray(rhs, dtype=np.float64)).reshape(-1)
        s = np.zeros(d.shape, bool) if strict is None else np.asarray(strict, dtype=bool).reshape(-1)
        if C.shape[0] == 0 or C.shape[0] != d.size or s.size != d.size:
            raise PrunemipError(f"{C.shape[0]} output rows, {d.size} right-hand sides, {s.size} strict flags")
        if not (np.all(np.isfinite(C)) and np.all(np.isfinite(d))):
            raise PrunemipError("the output rows contain NaN or Inf")
        return cls(C, d, s)

    def refutes(self, row_lower: np.ndarray) -> bool:
        """Whether lower bounds of ``c_k·y`` rule out every point: some ``lb_k > d_k`` (``≥`` if strict).

        Args:
            row_lower: a sound lower bound of each ``c_k·y``.

        Returns:
            Whether no point satisfies all rows.
        """
        gap = row_lower - self.rhs
        return bool(np.any((gap > 0.0) | (self.strict & (gap >= 0.0))))

    def violation(self, outputs: np.ndarray) -> np.ndarray:
        """``v = max_k (c_k·y − d_k)`` per output row of ``outputs`` (batch, n_outputs)."""
        return np.max(np.atleast_2d(outputs) @ self.coefficients.T - self.rhs, axis=1)

    def hold(self, outputs: np.ndarray) -> bool:
        """Whether one output vector satisfies every row, each slack ``d_k − c_k·y`` computed
        as :meth:`prunemip.vnnlib.OutputConstraint.slack` does (``≥ 0``, ``> 0`` if strict)."""
        for c, d, strict in zip(self.coefficients, self.rhs, self.strict, strict=True):
            slack = float(d - c @ outputs)
            if not (slack > 0.0 if strict else slack >= 0.0):
                return False
        return True


@dataclass(frozen=True)
class Split:
    """ReLU ``neuron`` of ``layer`` fixed to one side: ``ẑ ≥ 0`` (active) or ``ẑ ≤ 0``."""

    layer: int
    neuron: int
    active: bool


@dataclass(frozen=True, eq=False)
class Subdomain:
    """The region with ``splits``; bounds sound on it, and what bounding it found.

    ``value`` is a proven lower bound of ``v(x) = max_k (c_k·f(x) − d_k)`` over the subdomain
    (``inf`` when it is empty). ``babsr``/``intercept`` hold the branching scores per layer
    (0 at stable neurons), ``points`` the concretisation points of the rows' bounds and
    ``parameters`` the optimised slopes and split terms its row bounds used (if any).
    """

    splits: tuple[Split, ...]
    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    row_lower: np.ndarray
    value: float
    refuted: bool
    babsr: tuple[np.ndarray, ...]
    intercept: tuple[np.ndarray, ...]
    points: np.ndarray
    parameters: Parameters | None = None

    @property
    def depth(self) -> int:
        return len(self.splits)


class _Pending(NamedTuple):
    """A subdomain to bound: its splits, neuron bounds, optimised parameters (or ``None``) and
    the row lower bounds already proven on it (or ``None``)."""

    splits: tuple[Split, ...]
    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    parameters: Parameters | None
    floor: np.ndarray | None


@dataclass(frozen=True, eq=False)
class Query:
    """The network, the region and the rows that branch and bound decides."""

    network: Network
    region: InputRegion
    rows: OutputRows

    @property
    def relu_layers(self) -> tuple[bool, ...]:
        return tuple(layer.activation == "relu" for layer in self.network.layers)

    @functools.cached_property
    def branchable(self) -> tuple[np.ndarray, ...]:
        """Per layer, the neurons worth a split: hidden ReLUs with an incoming weight and a path
        of nonzero weights to the outputs (any other neuron leaves the outputs unchanged, and
        the big-M encoding folds it away, so its split would not reach the MIP)."""
        layers = self.network.layers
        live = np.ones(layers[-1].n_out, bool)
        masks = [np.zeros(layers[-1].n_out, bool)]
        for k in range(len(layers) - 2, -1, -1):
            live = (abs(layers[k + 1].weight).T @ live.astype(np.float64)) > 0.0
            has_input = np.diff(layers[k].weight.indptr) > 0
            masks.insert(0, live & has_input & self.relu_layers[k])
        return tuple(masks)

    def unstable(self, sub: Subdomain) -> tuple[np.ndarray, ...]:
        """Per layer, the branchable neurons ``sub`` leaves unstable (``l < 0 < u``).

        Args:
            sub: the subdomain.

        Returns:
            One boolean mask per layer.
        """
        return tuple(
            (lo < 0.0) & (hi > 0.0) & mask
            for lo, hi, mask in zip(sub.lower, sub.upper, self.branchable, strict=True)
        )

    def bound(
        self,
        splits: tuple[Split, ...],
        lower: Sequence[np.ndarray],
        upper: Sequence[np.ndarray],
        start_layer: int,
        rows: bool = True,
        floor: np.ndarray | None = None,
    ) -> Subdomain:
        """Bound the subdomain ``splits`` whose bounds ``lower``/``upper`` hold on it for layers
        ``< start_layer`` (the layers from ``start_layer`` on are recomputed, see the module).

        Args:
            splits: the subdomain's splits.
            lower: pre-activation lower bounds per layer, splits clamped.
            upper: the upper bounds likewise.
            start_layer: the first layer whose bounds to recompute (``len(layers)`` for none).
            rows: bound the rows too; else leave them at ``floor`` for :meth:`optimised`.
            floor: row lower bounds already proven on a superset (a split's parent), kept
                where better: a parent's bound holds on its children, so the value of ``v``
                never drops down the tree (default ``−inf``).

        Returns:
            The bounded subdomain.
        """
        last = len(self.network.layers) - 1
        lows, highs = list(lower), list(upper)
        for k in range(start_layer, last):
            if not self.relu_layers[k]:
                continue
            split = np.zeros(lows[k].size, bool)
            split[[s.neuron for s in splits if s.layer == k]] = True
            neurons = np.flatnonzero(((lows[k] < 0.0) & (highs[k] > 0.0)) | split)
            if neurons.size == 0:
                continue
            lows[k], highs[k] = self.tightened(lows, highs, k, neurons)
            if np.any(lows[k] > highs[k]):
                return self._empty(splits, lows, highs)
        if not rows:
            return self._unbounded(splits, tuple(lows), tuple(highs), floor)
        return self._with_rows(splits, tuple(lows), tuple(highs), floor=floor)

    def tightened(
        self, lower: Sequence[np.ndarray], upper: Sequence[np.ndarray], layer: int, neurons: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Layer ``layer``'s bounds with ``neurons`` re-bounded by the linear relaxation of the
        bounds of the layers below, intersected with their current bounds where finite.

        Args:
            lower: pre-activation lower bounds per layer.
            upper: the upper bounds likewise.
            layer: the layer to tighten.
            neurons: which of its neurons.

        Returns:
            The layer's new lower and upper bounds (copies).
        """
        eye = np.eye(lower[layer].size)[neurons]
        with np.errstate(over="ignore", invalid="ignore"):
            both = backward_bound(
                self.network, self.region, layer, np.vstack([eye, -eye]), lower, upper
            ).upper
        low, high = lower[layer].copy(), upper[layer].copy()
        up, down = both[: neurons.size], -both[neurons.size :]
        low[neurons] = np.where(np.isfinite(down), np.maximum(low[neurons], down), low[neurons])
        high[neurons] = np.where(np.isfinite(up), np.minimum(high[neurons], up), high[neurons])
        return low, high

    def optimised(self, subs: Sequence[Subdomain], parameters: Sequence[Parameters]) -> list[Subdomain]:
        """``subs`` with their rows re-bounded under optimised lower slopes and split terms (from
        :mod:`~prunemip.engine.beta`), each row keeping the better of both sound bounds; one
        batched bound for all of them.

        Args:
            subs: bounded subdomains.
            parameters: per subdomain and layer, lower slopes per row and split terms ``β s``
                per row (nonzero only at that subdomain's splits).

        Returns:
            The re-bounded subdomains, in order, each holding its parameters.
        """
        return self._with_rows_batch(
            [
                _Pending(s.splits, s.lower, s.upper, p, s.row_lower)
                for s, p in zip(subs, parameters, strict=True)
            ]
        )

    def _with_rows(
        self,
        splits: tuple[Split, ...],
        lower: tuple[np.ndarray, ...],
        upper: tuple[np.ndarray, ...],
        parameters: Parameters | None = None,
        floor: np.ndarray | None = None,
    ) -> Subdomain:
        """The rows' lower bounds over the subdomain (at least ``floor``), its value, scores
        and witness points (:meth:`_with_rows_batch` of one)."""
        return self._with_rows_batch([_Pending(splits, lower, upper, parameters, floor)])[0]

    def _with_rows_batch(self, pending: Sequence[_Pending]) -> list[Subdomain]:
        """:meth:`_with_rows` of every entry of ``pending``, in one batched backward bound. Split
        terms are only sound on a subdomain because each is ``β s_j`` on a split ``s_j ẑ_j ≥ 0``
        of its own splits."""
        last = len(self.network.layers) - 1
        lower = [np.stack(layer) for layer in zip(*(p.lower for p in pending), strict=True)]
        upper = [np.stack(layer) for layer in zip(*(p.upper for p in pending), strict=True)]
        given = [p.parameters for p in pending]
        slopes, terms = [], []
        for k in range(last):
            slopes.append(
                _stacked([None if g is None else g.slopes[k] for g in given], _crown_slopes, lower, upper, k)
            )
            terms.append(
                _stacked([None if g is None else g.terms[k] for g in given], _no_terms, lower, upper, k)
            )
        C = -self.rows.coefficients
        with np.errstate(over="ignore", invalid="ignore"):
            result = backward_bound(self.network, self.region, last, C, lower, upper, slopes, terms)
        first = result.coefficients[0]
        points = self.region.maximisers(np.nan_to_num(first.reshape(-1, first.shape[-1])))
        points = points.reshape(first.shape)
        return [
            self._subdomain(entry, result.upper[b], [g[b] for g in result.coefficients], points[b])
            for b, entry in enumerate(pending)
        ]

    def _subdomain(
        self, entry: _Pending, row_upper: np.ndarray, coefficients: Sequence[np.ndarray], points: np.ndarray
    ) -> Subdomain:
        """The subdomain ``entry`` with the upper bounds ``row_upper`` of its rows of ``−C y``."""
        row_lower = np.where(np.isfinite(row_upper), -row_upper, -np.inf)
        if entry.floor is not None:
            row_lower = np.maximum(row_lower, entry.floor)
        gaps = row_lower - self.rows.rhs
        best = int(np.argmax(gaps))
        babsr, intercept = self._scores(coefficients, best, entry.lower, entry.upper)
        return Subdomain(
            entry.splits,
            entry.lower,
            entry.upper,
            row_lower,
            float(gaps[best]),
            self.rows.refutes(row_lower),
            babsr,
            intercept,
            points,
            entry.parameters,
        )

    def _empty(
        self, splits: tuple[Split, ...], lower: Sequence[np.ndarray], upper: Sequence[np.ndarray]
    ) -> Subdomain:
        """A subdomain its bounds prove empty: refuted, every row bound ``+inf``."""
        return self._given_rows(splits, lower, upper, np.inf)

    def _unbounded(
        self,
        splits: tuple[Split, ...],
        lower: Sequence[np.ndarray],
        upper: Sequence[np.ndarray],
        floor: np.ndarray | None,
    ) -> Subdomain:
        """A subdomain whose rows are not bounded yet (row bounds ``floor``, default ``−inf``)."""
        return self._given_rows(splits, lower, upper, -np.inf if floor is None else floor)

    def _given_rows(
        self,
        splits: tuple[Split, ...],
        lower: Sequence[np.ndarray],
        upper: Sequence[np.ndarray],
        row_lower: np.ndarray | float,
    ) -> Subdomain:
        """A subdomain with the given row lower bounds (one for all rows, or one each), its value
        from them, and no branching scores or points."""
        zeros = tuple(np.zeros(lo.size) for lo in lower)
        row_lower = np.broadcast_to(np.asarray(row_lower, dtype=float), self.rows.rhs.shape).copy()
        value = float(np.max(row_lower - self.rows.rhs)) if row_lower.size else -np.inf
        empty = np.zeros((0, self.region.size))
        refuted = self.rows.refutes(row_lower)
        return Subdomain(splits, tuple(lower), tuple(upper), row_lower, value, refuted, zeros, zeros, empty)

    def _scores(
        self,
        coefficients: Sequence[np.ndarray],
        row: int,
        lower: Sequence[np.ndarray],
        upper: Sequence[np.ndarray],
    ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """BaBSR and intercept scores per layer for ``row`` (see the module docstring).

        ``coefficients[k + 1][row]`` is ``G``, the coefficient of ``h_k`` in the upper bound of
        ``−c·y``, so the lower bound of ``c·y`` has ``λ = −G``.
        """
        babsr, intercept = [], []
        layers = self.network.layers
        for k, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
            unstable = (lo < 0.0) & (hi > 0.0) & self.branchable[k]
            if not unstable.any():
                babsr.append(np.zeros(lo.size))
                intercept.append(np.zeros(lo.size))
                continue
            lam = np.nan_to_num(-coefficients[k + 1][row])
            width = np.where(unstable, hi - lo, 1.0)
            a = np.where(unstable, hi / width, 0.0)
            t = -a * np.where(unstable, lo, 0.0)
            icp = np.minimum(lam, 0.0) * t
            b = layers[k].bias * lam
            score = np.abs(np.maximum(b * (a - 1.0), b * a) + icp)
            babsr.append(np.where(unstable, score, 0.0))
            intercept.append(np.where(unstable, icp, 0.0))
        return tuple(babsr), tuple(intercept)

    # ------------------------------------------------------------------ branching
    def children(
        self, parent: Subdomain, layer: int, neuron: int, intermediate: bool = True, rows: bool = True
    ) -> tuple[Subdomain, Subdomain]:
        """The two subdomains of splitting ``neuron`` of ``layer``: active, then inactive.

        Their feasible sets cover the parent's (every point has ``ẑ ≥ 0`` or ``ẑ ≤ 0``).

        Args:
            parent: the subdomain to split.
            layer: the layer of the neuron.
            neuron: the neuron, unstable in ``parent``.
            intermediate: recompute the later layers' bounds (else only the split is clamped).
            rows: bound the rows (else leave them to :meth:`optimised`).

        Returns:
            The bounded children.
        """
        start = layer + 1 if intermediate else len(self.network.layers)
        floor = parent.row_lower
        return tuple(  # type: ignore[return-value]
            self.bound((*parent.splits, Split(layer, neuron, active)), low, high, start, rows, floor)
            for active, low, high in self._clamped(parent, layer, neuron)
        )

    def _clamped(self, parent: Subdomain, layer: int, neuron: int) -> list[tuple[bool, list, list]]:
        sides = []
        for active in (True, False):
            lows, highs = list(parent.lower), list(parent.upper)
            lows[layer], highs[layer] = lows[layer].copy(), highs[layer].copy()
            if active:
                lows[layer][neuron] = max(lows[layer][neuron], 0.0)
            else:
                highs[layer][neuron] = min(highs[layer][neuron], 0.0)
            sides.append((active, lows, highs))
        return sides

    def choose_babsr(self, sub: Subdomain) -> tuple[int, int] | None:
        """The neuron BaBSR splits: the highest score, else the most negative intercept score,
        else the widest unstable neuron; ``None`` when no neuron is unstable."""
        ranked = _ranked(sub.babsr, 1)
        if ranked and _score(sub.babsr, ranked[0]) > SCORE_FLOOR:
            return ranked[0]
        ranked = _ranked(tuple(-s for s in sub.intercept), 1)
        if ranked and _score(sub.intercept, ranked[0]) < -SCORE_FLOOR:
            return ranked[0]
        widths = tuple(
            np.where(mask, hi - lo, 0.0)
            for lo, hi, mask in zip(sub.lower, sub.upper, self.unstable(sub), strict=True)
        )
        ranked = _ranked(widths, 1)
        return ranked[0] if ranked and _score(widths, ranked[0]) > 0.0 else None

    def choose_fsb(self, sub: Subdomain, candidates: int) -> tuple[int, int] | None:
        """FSB: the top ``candidates`` of the BaBSR and of the intercept scores, each re-bounded
        on both sides with the intermediate bounds kept; the best worse child wins."""
        fallback = self.choose_babsr(sub)
        pool = dict.fromkeys(
            [*_ranked(sub.babsr, candidates), *_ranked(tuple(-s for s in sub.intercept), candidates)]
        )
        best, best_value = fallback, -np.inf
        for layer, neuron in pool:
            value = min(
                self._with_rows(sub.splits, tuple(low), tuple(high)).value
                for _, low, high in self._clamped(sub, layer, neuron)
            )
            if value > best_value:
                best, best_value = (layer, neuron), value
        return best


def _score(scores: Sequence[np.ndarray], where: tuple[int, int]) -> float:
    return float(scores[where[0]][where[1]])


def _ranked(scores: Sequence[np.ndarray], count: int) -> list[tuple[int, int]]:
    """The ``count`` positive entries of the per-layer ``scores`` with the largest values."""
    flat = np.concatenate(scores) if scores else np.zeros(0)
    if flat.size == 0:
        return []
    offsets = np.cumsum([0, *(s.size for s in scores)])
    top = np.argsort(-flat, kind="stable")[:count]
    top = top[flat[top] > 0.0]
    layers = np.searchsorted(offsets, top, side="right") - 1
    return [(int(k), int(i - offsets[k])) for k, i in zip(layers, top, strict=True)]


def _stacked(
    values: Sequence[np.ndarray | None],
    default: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    layer: int,
) -> np.ndarray | None:
    """One layer's per-row parameters of a batch, ``(B, rows, n)``: ``None`` when no subdomain
    has any, else each subdomain's, or ``default`` of its bounds (``lower[layer][b]``, …)
    where it has none."""
    if all(v is None for v in values):
        return None
    shape = next(v for v in values if v is not None).shape
    low, high = lower[layer], upper[layer]
    return np.stack(
        [np.broadcast_to(default(low[b], high[b]) if v is None else v, shape) for b, v in enumerate(values)]
    )


def _crown_slopes(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """CROWN's lower slopes, what a subdomain without optimised ones is bounded with."""
    return relu_relaxation(lower, upper)[2]


def _no_terms(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """No split terms: zeros."""
    return np.zeros_like(lower)
