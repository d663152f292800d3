"""Cutting planes from the ideal formulation of a single ReLU over a box.

Anderson, Huchette, Ma, Tjandraatmadja & Vielma, "Strong mixed-integer programming
formulations for trained neural networks", *Math. Programming* 183 (2020), Thm. 1. For an
unstable ReLU ``y = max(0, wᵀv + β)`` whose inputs lie in a box ``L ≤ v ≤ U``, with
``β ≤ β̄`` and its binary ``δ``, every subset ``I`` of the inputs gives

    y ≤ Σ_{i∈I} w_i (v_i − L̆_i (1 − δ)) + (β̄ + Σ_{i∉I} w_i Ŭ_i) δ,

where ``L̆_i`` / ``Ŭ_i`` is the end of ``[L_i, U_i]`` at which ``w_i v_i`` is smallest /
largest. ``I = ∅`` is the big-M row ``y ≤ u δ`` and ``I`` = all inputs the row
``y ≤ ẑ − l (1 − δ)``; with ``y ≥ 0``, ``y ≥ ẑ`` and ``0 ≤ δ ≤ 1`` the whole family is the
convex hull of the neuron's graph over the box, tighter than the triangle relaxation
that the big-M rows give in ``(ẑ, y)``. It is exponential in size but separable in
linear time: for a point ``(v*, δ*)`` the most violated member has
``i ∈ I ⇔ w_i (v*_i − L̆_i (1 − δ*)) < w_i Ŭ_i δ*``.

Validity, the property the LP bounds rest on: lift an input of the region with
``δ = [ẑ > 0]``. At ``δ = 0``, ``y = 0`` and the right side is ``Σ_I w_i (v_i − L̆_i) ≥ 0``;
at ``δ = 1`` it is ``Σ_I w_i v_i + β̄ + Σ_{∉I} w_i Ŭ_i ≥ wᵀv + β = y``. Both hold for any
``v`` in the box, and the encoder's column bounds contain every activation of the region.
Inputs without a column (stably inactive or constant neurons) are folded into ``β``; the
float64 sums of ``β̄``, the δ coefficient and the right side are rounded outwards by
Higham's ``γ_n``, so each stored row holds exactly at every lifted point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from prunemip.encoders.mip_model import MipModel, NeuronStatus
from prunemip.rounding import gamma


@dataclass(frozen=True)
class CutRows:
    """Rows ``matrix · v ≤ upper`` (no lower side) over a model's columns."""

    matrix: sp.csr_matrix
    upper: np.ndarray

    @property
    def count(self) -> int:
        return int(self.matrix.shape[0])


@dataclass(frozen=True, eq=False)
class _NeuronFamily:
    """One unstable layer's neurons and what their inequalities need (one row a neuron)."""

    output_columns: np.ndarray  #: y per neuron
    binary_columns: np.ndarray  #: δ per neuron
    input_columns: np.ndarray  #: the columns of v (shared by the layer's neurons)
    weight: np.ndarray  #: w, dense (neurons × inputs)
    low_end: np.ndarray  #: L̆ per neuron and input
    high_end: np.ndarray  #: Ŭ per neuron and input
    bias_upper: np.ndarray  #: β̄ per neuron (constants folded, rounded up)


class IdealCutSeparator:
    """Separates the most violated ideal-formulation inequality of every unstable ReLU of a
    model (all layers but the last, which is the objective's) at a point of its relaxation."""

    def __init__(self, model: MipModel, tolerance: float = 1e-6) -> None:
        self.n_cols = model.n_cols
        self.tolerance = tolerance
        self.families = [
            family
            for index in range(len(model.layers) - 1)
            if (family := _layer_family(model, index)) is not None
        ]

    def separate(self, values: np.ndarray, limit: int | None = None) -> CutRows | None:
        """The most violated inequality of each ReLU that ``values`` violates.

        Args:
            values: a point of the model's relaxation (one value per column).
            limit: the most rows to return (the most violated, relative to their scale);
                None for all.

        Returns:
            One row per ReLU violated by more than ``tolerance`` (relative to the row's
            scale), or None when there is none.
        """
        point = np.asarray(values, dtype=np.float64)
        found = [(family, *self._violations(family, point)) for family in self.families]
        if limit is not None and found:
            ranked = np.sort(np.concatenate([relative for _, _, relative, _ in found]))[::-1]
            if ranked.size > limit:
                cutoff = ranked[limit - 1]
                found = [(f, n[r >= cutoff], r[r >= cutoff], c[r >= cutoff]) for f, n, r, c in found]
        blocks = [self._rows(family, neurons, chosen) for family, neurons, _, chosen in found if neurons.size]
        if not blocks:
            return None
        return CutRows(
            sp.vstack([b.matrix for b in blocks], format="csr"), np.concatenate([b.upper for b in blocks])
        )

    def _violations(
        self, family: _NeuronFamily, point: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The neurons whose most violated inequality ``point`` violates, that violation over
        the row's scale, and the subsets ``I`` (a boolean row a neuron)."""
        v = point[family.input_columns][None, :]
        delta = np.clip(point[family.binary_columns], 0.0, 1.0)[:, None]
        y = point[family.output_columns]
        w = family.weight
        inside = w * (v - family.low_end * (1.0 - delta))
        outside = w * family.high_end * delta
        chosen = inside < outside
        terms = np.where(chosen, inside, outside)
        right = terms.sum(axis=1) + family.bias_upper * delta[:, 0]
        relative = (y - right) / (1.0 + np.abs(terms).sum(axis=1))
        proper = chosen.any(axis=1) & ~np.all(chosen | (w == 0.0), axis=1)
        violated = np.flatnonzero(proper & (relative > self.tolerance))
        return violated, relative[violated], chosen[violated] & (w[violated] != 0.0)

    def _rows(self, family: _NeuronFamily, neurons: np.ndarray, chosen: np.ndarray) -> CutRows:
        """``y − Σ_I w_i v_i − c δ ≤ r`` with ``c = β̄ + Σ_I w_i L̆_i + Σ_{∉I} w_i Ŭ_i`` and
        ``r = −Σ_I w_i L̆_i``, both rounded up (``δ ≥ 0``, so a larger ``c`` only loosens)."""
        w = family.weight[neurons]
        low_terms = np.where(chosen, w * family.low_end[neurons], 0.0)
        high_terms = np.where(chosen, 0.0, w * family.high_end[neurons])
        n_terms = w.shape[1] + 2
        coefficient = family.bias_upper[neurons] + low_terms.sum(axis=1) + high_terms.sum(axis=1)
        coefficient += gamma(n_terms) * (
            np.abs(family.bias_upper[neurons])
            + np.abs(low_terms).sum(axis=1)
            + np.abs(high_terms).sum(axis=1)
        )
        upper = -low_terms.sum(axis=1) + gamma(n_terms) * np.abs(low_terms).sum(axis=1)
        local, inputs = np.nonzero(chosen)
        count = neurons.size
        rows = np.concatenate([np.arange(count), np.arange(count), local])
        cols = np.concatenate(
            [family.output_columns[neurons], family.binary_columns[neurons], family.input_columns[inputs]]
        )
        vals = np.concatenate([np.ones(count), -coefficient, -w[local, inputs]])
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(count, self.n_cols))
        return CutRows(matrix, upper)


def _layer_family(model: MipModel, index: int) -> _NeuronFamily | None:
    """The unstable ReLUs of layer ``index`` with their box, or None when it has none."""
    encoding, layer = model.layers[index], model.network.layers[index]
    unstable = (encoding.status == NeuronStatus.UNSTABLE) & (encoding.binary_column >= 0)
    neurons = np.flatnonzero(unstable & (encoding.output_column >= 0))
    if neurons.size == 0:
        return None
    dense = layer.weight[neurons].toarray()
    if index == 0:
        columns, weight, constant_terms = np.asarray(model.input_columns), dense, dense[:, :0]
    else:
        previous = model.layers[index - 1]
        has_column = previous.output_column >= 0
        columns, weight = previous.output_column[has_column], dense[:, has_column]
        fixed = ~has_column
        if np.any(dense[:, fixed & (previous.status == NeuronStatus.REMOVED)]):
            return None  # a removed neuron feeding a live one: nothing to cut safely
        constant_terms = dense[:, fixed] * previous.constant_value[fixed][None, :]
    lower, upper = model.col_lower[columns], model.col_upper[columns]
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        return None
    bias = layer.bias[neurons]
    bias_upper = bias + constant_terms.sum(axis=1)
    bias_upper += gamma(constant_terms.shape[1] + 1) * (np.abs(bias) + np.abs(constant_terms).sum(axis=1))
    positive = weight >= 0.0
    return _NeuronFamily(
        output_columns=encoding.output_column[neurons],
        binary_columns=encoding.binary_column[neurons],
        input_columns=np.asarray(columns, dtype=np.int64),
        weight=weight,
        low_end=np.where(positive, lower[None, :], upper[None, :]),
        high_end=np.where(positive, upper[None, :], lower[None, :]),
        bias_upper=bias_upper,
    )
