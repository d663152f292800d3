"""Neuron bounds over an input region, and interval arithmetic to compute them.

For every layer ``k`` the bounds hold ``l_k ≤ ẑ_k ≤ u_k`` for the pre-activations
``ẑ_k = W_k h_{k-1} + b_k`` of all inputs in the region. A ReLU neuron is stably inactive
when ``u ≤ 0``, stably active when ``l ≥ 0`` and unstable otherwise; only unstable
neurons need a binary in the big-M formulation.

Interval arithmetic in centre–radius form (equivalent to ``W⁺u + W⁻l`` but one sparse
product cheaper): with ``c = (l + u)/2`` and ``r = (u − l)/2`` of the previous layer's
post-activation box, ``ẑ ∈ [W c + b − |W| r, W c + b + |W| r]``.

Soundness in floating point: each product ``Σ_i a_i b_i`` of ``n`` terms computed in
float64 is within ``γ_n Σ|a_i b_i|`` of the exact value (``γ_n = n·u/(1 − n·u)``,
``u = 2⁻⁵³``; Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1). Every
bound is widened outward by four times that (covering the centre and radius products
and the final sum) plus a relative tolerance, so the true bounds always lie inside.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.rounding import gamma

#: Extra outward widening, relative to the bound's magnitude, on top of the rounding bound.
RELATIVE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class BoundsStage:
    """One stage of a progressive bounds computation, as reported in the stats tables."""

    method: str  #: "ia", "linear", "alpha", "lp" or "mip"
    seconds: float
    unstable: int  #: unstable ReLU neurons after this stage
    total_width: float  #: Σ (u − l) over them
    details: dict[str, object] = field(default_factory=dict)  #: e.g. LPs solved, budget hit

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "seconds": self.seconds,
            "unstable": self.unstable,
            "total_width": self.total_width,
            **self.details,
        }


@dataclass(frozen=True, eq=False)
class NeuronBounds:
    """Sound pre-activation bounds of every layer of a network over one input region.

    ``method`` names the last stage that ran; ``seconds`` is the time of all stages and
    ``stages`` their individual figures (time, #unstable, Σ(u − l)), cheapest first.
    """

    input_lower: np.ndarray
    input_upper: np.ndarray
    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    relu_layers: tuple[bool, ...]
    method: str
    seconds: float
    stages: tuple[BoundsStage, ...] = ()

    def stably_inactive(self, k: int) -> np.ndarray:
        """Stably inactive neurons of layer ``k``: ``u ≤ 0``.

        Args:
            k: the layer index.

        Returns:
            A boolean mask, shape ``(n_out,)`` of layer ``k``.
        """
        return self.upper[k] <= 0.0

    def stably_active(self, k: int) -> np.ndarray:
        """Stably active neurons of layer ``k``: ``l ≥ 0``.

        Args:
            k: the layer index.

        Returns:
            A boolean mask, shape ``(n_out,)`` of layer ``k``.
        """
        return self.lower[k] >= 0.0

    def unstable(self, k: int) -> np.ndarray:
        """Unstable ReLU neurons of layer ``k`` (all False for an identity layer): ``l < 0 < u``.

        Args:
            k: the layer index.

        Returns:
            A boolean mask, shape ``(n_out,)`` of layer ``k``.
        """
        if not self.relu_layers[k]:
            return np.zeros(self.lower[k].shape, dtype=bool)
        return (self.lower[k] < 0.0) & (self.upper[k] > 0.0)

    @property
    def n_unstable(self) -> int:
        return int(sum(np.count_nonzero(self.unstable(k)) for k in range(len(self.lower))))

    @property
    def total_unstable_width(self) -> float:
        """Σ (u − l) over unstable ReLU neurons: the total big-M width."""
        return float(
            sum(np.sum((self.upper[k] - self.lower[k])[self.unstable(k)]) for k in range(len(self.lower)))
        )

    def post_activation(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the layer's output ``h_k`` (ReLU clips both ends at 0).

        Args:
            k: the layer index.

        Returns:
            ``(lower, upper)``, each of shape ``(n_out,)`` of layer ``k``.
        """
        if self.relu_layers[k]:
            return np.maximum(self.lower[k], 0.0), np.maximum(self.upper[k], 0.0)
        return self.lower[k], self.upper[k]

    def stage(self, method: str, seconds: float, **details: object) -> BoundsStage:
        """This bounds' figures as a stage of ``method`` that took ``seconds``.

        Args:
            method: the stage's name (``"ia"``, ``"linear"``, ``"alpha"``, ``"lp"`` or ``"mip"``).
            seconds: the stage's wall time.
            **details: further figures of the stage (e.g. LPs solved, budget hit).

        Returns:
            The stage, with the current #unstable and Σ(u − l).
        """
        return BoundsStage(method, seconds, self.n_unstable, self.total_unstable_width, dict(details))

    def with_stages(self, method: str, seconds: float, stages: tuple[BoundsStage, ...]) -> NeuronBounds:
        """The same bounds recorded as the result of ``method``, with a new stage history.

        Args:
            method: the last stage that ran.
            seconds: the time of all stages.
            stages: every stage's figures, cheapest first.

        Returns:
            A copy with ``method``, ``seconds`` and ``stages`` replaced.
        """
        return replace(self, method=method, seconds=seconds, stages=stages)

    def tightened(
        self,
        lower: Sequence[np.ndarray],
        upper: Sequence[np.ndarray],
        method: str,
        seconds: float,
        **details: object,
    ) -> NeuronBounds:
        """These bounds replaced by ``lower``/``upper`` from a further stage ``method`` that
        took ``seconds`` (appended to ``stages``).

        Args:
            lower: the new lower bounds, one array per layer.
            upper: the new upper bounds, one array per layer.
            method: the stage's name.
            seconds: the stage's wall time (added to ``self.seconds``).
            **details: further figures of the stage.

        Returns:
            The new bounds.
        """
        bounds = replace(self, lower=tuple(lower), upper=tuple(upper))
        stage = bounds.stage(method, seconds, **details)
        return bounds.with_stages(method, self.seconds + seconds, (*self.stages, stage))

    def contains(self, network: Network, x: np.ndarray, tol: float = 0.0) -> bool:
        """Whether every pre-activation of ``network`` at ``x`` (one input or a batch) lies in the bounds.

        Args:
            network: the network the bounds belong to.
            x: one input, shape ``(n_inputs,)``, or a batch ``(batch, n_inputs)``.
            tol: slack allowed on both sides.

        Returns:
            ``True`` when every value lies in ``[lower − tol, upper + tol]``.
        """
        values = network.pre_activations(x)
        return all(
            bool(np.all(z >= lo - tol) and np.all(z <= hi + tol))
            for z, lo, hi in zip(values, self.lower, self.upper, strict=True)
        )


def _widen(
    low: np.ndarray, high: np.ndarray, rounding: np.ndarray, relative: float = RELATIVE_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    slack = rounding + relative * np.maximum(np.abs(low), np.abs(high))
    return low - slack, high + slack


def interval_layer(
    weight: sp.csr_matrix,
    bias: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    relative: float = RELATIVE_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Sound interval bounds of ``W h + b`` for ``h ∈ [lower, upper]``.

    The ``4 γ_{n+2}·magnitude`` widening alone is rigorous (it covers the rounding of the
    centre, the radius, both products and the final sums); ``relative`` adds a margin on top.

    Args:
        weight: ``W``.
        bias: ``b``.
        lower: the lower ends of the box of ``h``.
        upper: its upper ends.
        relative: extra outward widening, relative to each bound's magnitude.

    Returns:
        The lower and upper bounds of ``W h + b``.
    """
    center = 0.5 * (lower + upper)
    radius = 0.5 * (upper - lower)
    abs_weight = abs(weight)
    mid = weight @ center + bias
    spread = abs_weight @ radius
    magnitude = abs_weight @ (np.abs(center) + radius) + np.abs(bias)
    n_terms = np.diff(weight.indptr) + 2
    return _widen(mid - spread, mid + spread, 4.0 * gamma(n_terms) * magnitude, relative)


def interval_bounds(network: Network, region: InputRegion) -> NeuronBounds:
    """Interval-arithmetic bounds of every layer over the region's bounding box.

    Args:
        network: the network.
        region: the input region (its bounding box is used).

    Returns:
        The bounds, with one ``ia`` stage.

    Raises:
        PrunemipError: if a bound overflows float64.
    """
    start = time.perf_counter()
    lower, upper = region.lower, region.upper
    lows, highs = [], []
    for index, layer in enumerate(network.layers):
        with np.errstate(over="ignore", invalid="ignore"):
            lo, hi = interval_layer(layer.weight, layer.bias, lower, upper)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise PrunemipError(
                f"layer {index}: neuron bounds overflow float64; the weights are too large "
                "to encode (rescale the network)"
            )
        lows.append(lo)
        highs.append(hi)
        lower, upper = (np.maximum(lo, 0.0), np.maximum(hi, 0.0)) if layer.activation == "relu" else (lo, hi)
    bounds = NeuronBounds(
        input_lower=region.lower.copy(),
        input_upper=region.upper.copy(),
        lower=tuple(lows),
        upper=tuple(highs),
        relu_layers=tuple(layer.activation == "relu" for layer in network.layers),
        method="ia",
        seconds=0.0,
    )
    seconds = time.perf_counter() - start
    return bounds.with_stages("ia", seconds, (bounds.stage("ia", seconds),))
