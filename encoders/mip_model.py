"""``MipModel``: a MIP as plain arrays, plus the map back to the network's neurons.

    max/min  cᵀv + offset   s.t.  row_lower ≤ A v ≤ row_upper,  col_lower ≤ v ≤ col_upper,
                                  v_j ∈ ℤ for integral columns

``A`` is a CSC matrix. Column and row names are generated on demand from compact
blocks (a prefix and neuron indices), so building a model never formats strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

import numpy as np
import scipy.sparse as sp

from prunemip.network import Network
from prunemip.regions import InputRegion


class NeuronStatus(IntEnum):
    """How the encoder treated a neuron."""

    INACTIVE = 0  #: ReLU with u ≤ 0: y = 0, no column
    ACTIVE = 1  #: ReLU with l ≥ 0: y = ẑ, one continuous column, no binary
    UNSTABLE = 2  #: ReLU with l < 0 < u: big-M with one binary
    CONSTANT = 3  #: no incoming weight from a variable: value folded into the next bias
    LINEAR = 4  #: identity activation (the logits): y = ẑ
    REMOVED = 5  #: no path to the outputs: omitted


@dataclass(frozen=True, eq=False)
class NameBlock:
    """Names ``f"{prefix}{i}"`` for consecutive columns or rows."""

    prefix: str
    indices: np.ndarray

    def names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in self.indices]


@dataclass(frozen=True, eq=False)
class LayerEncoding:
    """Where one network layer's neurons live in the MIP (``-1``: no such column)."""

    status: np.ndarray  #: NeuronStatus per neuron
    output_column: np.ndarray  #: column of the post-activation y
    preactivation_column: np.ndarray  #: column of ẑ ("variable" formulation, unstable only)
    binary_column: np.ndarray  #: column of δ (unstable only)
    constant_value: np.ndarray  #: post-activation value of INACTIVE/CONSTANT neurons
    lower: np.ndarray  #: pre-activation bounds used for the big-M rows
    upper: np.ndarray

    def count(self, status: NeuronStatus) -> int:
        """How many of the layer's neurons have ``status``.

        Args:
            status: a :class:`NeuronStatus`.

        Returns:
            The count.
        """
        return int(np.count_nonzero(self.status == status))


@dataclass(frozen=True)
class EncodingStats:
    """Size of the encoded MIP and how each layer's neurons were treated."""

    rows: int
    columns: int
    nonzeros: int
    binaries: int
    unstable_neurons: int  #: unstable ReLUs by the bounds (live or not)
    weight_nonzeros: int
    per_layer: tuple[dict[str, int], ...]
    total_bigm_width: float
    bounds_method: str
    bounds_seconds: float
    build_seconds: float
    #: per bounds stage (cheapest first): method, seconds, unstable, total_width, details
    bounds_stages: tuple[dict[str, object], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "columns": self.columns,
            "nonzeros": self.nonzeros,
            "binaries": self.binaries,
            "unstable_neurons": self.unstable_neurons,
            "weight_nonzeros": self.weight_nonzeros,
            "per_layer": list(self.per_layer),
            "total_bigm_width": self.total_bigm_width,
            "bounds_method": self.bounds_method,
            "bounds_seconds": self.bounds_seconds,
            "build_seconds": self.build_seconds,
            "bounds_stages": [dict(stage) for stage in self.bounds_stages],
        }


@dataclass(frozen=True, eq=False)
class MipModel:
    """A solver-agnostic MIP over a network, with its map back to neurons and inputs."""

    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray  #: bool per column
    objective: np.ndarray
    objective_offset: float
    maximize: bool
    input_columns: np.ndarray
    output_columns: np.ndarray
    layers: tuple[LayerEncoding, ...]
    region: InputRegion
    network: Network
    formulation: str
    stats: EncodingStats
    column_blocks: tuple[NameBlock, ...] = field(repr=False)
    row_blocks: tuple[NameBlock, ...] = field(repr=False)
    #: L1 regions: columns of the positive and negative parts p, n of x − x0
    l1_columns: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_rows(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_cols(self) -> int:
        return int(self.matrix.shape[1])

    def column_names(self) -> list[str]:
        return [name for block in self.column_blocks for name in block.names()]

    def row_names(self) -> list[str]:
        return [name for block in self.row_blocks for name in block.names()]

    def with_objective(self, objective: np.ndarray, maximize: bool, offset: float = 0.0) -> MipModel:
        """The same constraints with another objective.

        Args:
            objective: the cost of every column, shape ``(n_cols,)``.
            maximize: maximise (True) or minimise.
            offset: the constant added to the objective.

        Returns:
            A new model sharing the constraint arrays.

        Raises:
            ValueError: when ``objective`` has the wrong shape.
        """
        cost = np.asarray(objective, dtype=np.float64)
        if cost.shape != (self.n_cols,):
            raise ValueError(f"objective has shape {cost.shape}, expected ({self.n_cols},)")
        return replace(self, objective=cost, maximize=maximize, objective_offset=float(offset))

    def with_margin_objective(self, target: int, label: int) -> MipModel:
        """Maximise the logit margin ``ẑ_target − ẑ_label``.

        Args:
            target: the class whose logit is pushed up.
            label: the true class, different from ``target``.

        Returns:
            A new model with that objective.

        Raises:
            ValueError: when a class is out of range or ``target == label``.
        """
        n_out = self.output_columns.size
        for name, index in (("target", target), ("label", label)):
            if not 0 <= index < n_out:
                raise ValueError(f"{name} {index} is not a class of a network with {n_out} outputs")
        if target == label:
            raise ValueError("the target class must differ from the true label")
        cost = np.zeros(self.n_cols)
        cost[self.output_columns[target]] += 1.0
        cost[self.output_columns[label]] -= 1.0
        return self.with_objective(cost, maximize=True)

    def evaluate_objective(self, values: np.ndarray) -> float:
        """The objective (with its offset) at a MIP point.

        Args:
            values: one value per column, shape ``(n_cols,)``.

        Returns:
            ``objective · values + objective_offset``.
        """
        return float(self.objective @ values + self.objective_offset)

    def inputs_from_solution(self, values: np.ndarray) -> np.ndarray:
        """The network input of a MIP point.

        Args:
            values: one value per column, shape ``(n_cols,)``.

        Returns:
            The input columns' values, shape ``(n_inputs,)``.
        """
        return np.asarray(values, dtype=np.float64)[self.input_columns]

    def outputs_from_solution(self, values: np.ndarray) -> np.ndarray:
        """The network outputs (logits) of a MIP point.

        Args:
            values: one value per column, shape ``(n_cols,)``.

        Returns:
            The output columns' values, shape ``(n_outputs,)``.
        """
        return np.asarray(values, dtype=np.float64)[self.output_columns]

    def solution_from_input(self, x: np.ndarray) -> np.ndarray:
        """The MIP point induced by input ``x``: every column set from a forward pass.

        Feasible whenever ``x`` lies in the region (the bounds contain the activations).
        Used as a starting solution and to check the formulation.

        Args:
            x: the input, any shape with ``n_inputs`` values.

        Returns:
            One value per column, shape ``(n_cols,)``.
        """
        point = np.asarray(x, dtype=np.float64).reshape(-1)
        values = np.zeros(self.n_cols)
        values[self.input_columns] = point
        if self.l1_columns is not None and self.region.center is not None:
            diff = point - self.region.center
            values[self.l1_columns[0]] = np.maximum(diff, 0.0)
            values[self.l1_columns[1]] = np.maximum(-diff, 0.0)
        for encoding, layer, z in zip(
            self.layers, self.network.layers, self.network.pre_activations(point), strict=True
        ):
            y = layer.activate(z)
            for column, value in (
                (encoding.output_column, y),
                (encoding.preactivation_column, z),
                (encoding.binary_column, (z > 0.0).astype(np.float64)),
            ):
                present = column >= 0
                values[column[present]] = value[present]
        return values

    def constraint_violation(self, values: np.ndarray) -> float:
        """Largest violation of any row, column bound or integrality at ``values``.

        Args:
            values: one value per column, shape ``(n_cols,)``.

        Returns:
            The largest violation (0 for a feasible point).
        """
        activity = self.matrix @ values
        row_violation = np.maximum(self.row_lower - activity, activity - self.row_upper)
        col_violation = np.maximum(self.col_lower - values, values - self.col_upper)
        integer_violation = np.abs(values - np.round(values))[self.integrality]
        return float(
            max(
                np.max(row_violation, initial=0.0),
                np.max(col_violation, initial=0.0),
                np.max(integer_violation, initial=0.0),
            )
        )

    def tolerance_effect(self, feasibility: float, integrality: float) -> float:
        """First-order bound on how far the objective can move inside a solver's tolerances.

        A solver accepts points that violate each row and bound by up to ``feasibility`` and
        binaries that are fractional by up to ``integrality`` (which lets an unstable neuron
        move by ``integrality · max(|l|, u)``). With ``g`` the sensitivity of the objective to
        each neuron's value (``g_L = |c|`` on the outputs, ``g_{k-1} = |W_k|ᵀ g_k``, ReLU being
        1-Lipschitz), the objective moves by at most ``Σ_neurons g·(feasibility + integrality·M)
        + Σ_inputs g·feasibility``. A proof about the objective is only a proof beyond this.
        Neurons without a column (stably inactive, constant, removed) hold exact constants: they
        neither err nor pass on the errors below them, so their ``g`` is 0.

        Args:
            feasibility: the solver's row and bound feasibility tolerance.
            integrality: the solver's integrality tolerance.

        Returns:
            The bound, in the objective's units.
        """
        sensitivity = np.abs(self.objective[self.output_columns])
        total = float(np.abs(np.delete(self.objective, self.output_columns)).sum()) * feasibility
        for encoding, layer in zip(reversed(self.layers), reversed(self.network.layers), strict=True):
            sensitivity = np.where(encoding.output_column >= 0, sensitivity, 0.0)
            unstable = encoding.status == NeuronStatus.UNSTABLE
            big_m = np.where(unstable, np.maximum(-encoding.lower, encoding.upper), 0.0)
            total += float(sensitivity @ (feasibility + integrality * big_m))
            sensitivity = abs(layer.weight).T @ sensitivity
        return total + float(sensitivity.sum()) * feasibility
