"""The framework-free network every stage downstream of training speaks.

A :class:`Network` is a chain of affine layers ``z = W h + b`` (``W`` a float64 CSR
matrix of shape ``(n_out, n_in)``) each followed by an activation (``relu`` for hidden
layers, ``identity`` for the logits). The CSR sparsity pattern *is* the pruning mask:
an entry that is not stored is a pruned weight, and prunemip's own file format keeps
the pattern exactly. Inputs are raw (e.g. pixels in [0, 1]): any input normalisation
``(x - mean) / std`` is folded into the first layer and only recorded in
:class:`InputSpec` for provenance, so the MIP's input box is the data's value range.

Slightly over 500 lines on purpose: the representation, its validation and its two
passes (forward with pre-activations, reverse-mode input gradient) belong together.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from prunemip.errors import PrunemipError

Activation = Literal["relu", "identity"]
ACTIVATIONS: tuple[str, ...] = ("relu", "identity")


def _as_bound_vector(value: float | Sequence[float] | np.ndarray, size: int, what: str) -> np.ndarray:
    """Broadcast a scalar or vector bound to a float64 vector of ``size`` entries."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(size, float(array))
    array = array.reshape(-1)
    if array.size != size:
        raise PrunemipError(f"{what} has {array.size} entries but the network has {size} inputs")
    return array.copy()


def _compact_vector(values: np.ndarray) -> float | list[float]:
    """A JSON-friendly form of a bound vector: one number when all entries agree."""
    if values.size and np.all(values == values[0]):
        return float(values[0])
    return [float(v) for v in values]


@dataclass(frozen=True, eq=False)
class InputSpec:
    """What the network's inputs are: shape, valid value range and provenance.

    ``lower``/``upper`` bound every raw input (``-inf``/``inf`` when unknown); they form
    the box every input region of the MIP is intersected with. ``normalization`` records
    a ``(x - mean) / std`` that has already been folded into the first layer.
    """

    shape: tuple[int, ...]
    lower: np.ndarray
    upper: np.ndarray
    normalization: dict[str, Any] | None = None
    dataset: str | None = None

    @classmethod
    def create(
        cls,
        shape: int | Sequence[int],
        lower: float | Sequence[float] | np.ndarray = -math.inf,
        upper: float | Sequence[float] | np.ndarray = math.inf,
        normalization: dict[str, Any] | None = None,
        dataset: str | None = None,
    ) -> InputSpec:
        """Validate and broadcast the bounds.

        Args:
            shape: the input shape (an int for a flat input).
            lower: lower bound of every raw input: a scalar or one per input.
            upper: upper bound likewise.
            normalization: a ``{"mean", "std"}`` already folded into the first layer.
            dataset: the dataset the inputs come from.

        Returns:
            The spec; :class:`PrunemipError` for NaN bounds, a wrong count or ``lower > upper``.
        """
        shape_tuple = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        size = int(np.prod(shape_tuple))
        lo = _as_bound_vector(lower, size, "input lower bound")
        hi = _as_bound_vector(upper, size, "input upper bound")
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
            raise PrunemipError("input bounds contain NaN")
        if np.any(lo > hi):
            bad = int(np.argmax(lo > hi))
            raise PrunemipError(f"input {bad} has lower bound {lo[bad]} above upper bound {hi[bad]}")
        return cls(shape_tuple, lo, hi, normalization, dataset)

    @property
    def size(self) -> int:
        """The number of inputs."""
        return int(np.prod(self.shape))

    @property
    def is_bounded(self) -> bool:
        """Whether every input has a finite range."""
        return bool(np.all(np.isfinite(self.lower)) and np.all(np.isfinite(self.upper)))

    def with_range(self, lower: float | np.ndarray, upper: float | np.ndarray) -> InputSpec:
        """The same spec with a new value range.

        Args:
            lower: the new lower bound (a scalar or one per input).
            upper: the new upper bound.

        Returns:
            The new spec.
        """
        return InputSpec.create(self.shape, lower, upper, self.normalization, self.dataset)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (a bound vector whose entries agree is one number)."""
        return {
            "shape": list(self.shape),
            "lower": _compact_vector(self.lower),
            "upper": _compact_vector(self.upper),
            "normalization": self.normalization,
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """The inverse of :meth:`to_dict`; missing bounds are infinite.

        Args:
            data: a mapping with ``shape`` and optionally ``lower``, ``upper``,
                ``normalization``, ``dataset``.

        Returns:
            The spec.
        """
        return cls.create(
            data["shape"],
            data.get("lower", -math.inf),
            data.get("upper", math.inf),
            data.get("normalization"),
            data.get("dataset"),
        )


@dataclass(frozen=True, eq=False)
class Layer:
    """One affine map ``z = W h + b`` followed by ``activation``.

    ``weight`` is a canonical float64 CSR matrix of shape ``(n_out, n_in)``; its stored
    entries are the surviving (unpruned) weights.
    """

    weight: sp.csr_matrix
    bias: np.ndarray
    activation: Activation = "relu"

    @classmethod
    def create(cls, weight: Any, bias: Any, activation: str = "relu") -> Layer:
        """Build a layer from dense or sparse arrays; a dense array keeps its nonzeros.

        Args:
            weight: shape ``(n_out, n_in)``, dense or scipy sparse (its stored entries are kept).
            bias: ``n_out`` values.
            activation: ``"relu"`` or ``"identity"``.

        Returns:
            The layer, weights in canonical float64 CSR.
        """
        matrix = sp.csr_matrix(weight, dtype=np.float64, copy=True)
        matrix.sum_duplicates()
        matrix.sort_indices()
        bias_vector = np.asarray(bias, dtype=np.float64).reshape(-1).copy()
        if activation not in ACTIVATIONS:
            raise PrunemipError(f"unsupported activation {activation!r}; prunemip supports {ACTIVATIONS}")
        return cls(matrix, bias_vector, activation)  # type: ignore[arg-type]

    @functools.cached_property
    def abs_weight(self) -> sp.csr_matrix:
        """``|W|``, computed once (the bounds' rounding-error terms use it on every call)."""
        return abs(self.weight)

    @property
    def n_in(self) -> int:
        """Inputs of the layer."""
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        """Neurons of the layer."""
        return int(self.weight.shape[0])

    @property
    def nnz(self) -> int:
        """Number of nonzero weights (explicitly stored zeros do not count)."""
        return int(np.count_nonzero(self.weight.data))

    def apply(self, h: np.ndarray) -> np.ndarray:
        """Pre-activation ``W h + b`` for a batch ``h`` of shape ``(batch, n_in)``.

        Args:
            h: the layer's inputs, shape ``(batch, n_in)``.

        Returns:
            Shape ``(batch, n_out)``.
        """
        return (self.weight @ h.T).T + self.bias

    def activate(self, z: np.ndarray) -> np.ndarray:
        """The activation applied to pre-activations ``z`` (ReLU or identity).

        Args:
            z: pre-activations, any shape.

        Returns:
            ``max(z, 0)`` for a ReLU layer, ``z`` itself for an identity layer.
        """
        return np.maximum(z, 0.0) if self.activation == "relu" else z


@dataclass(frozen=True)
class LayerSummary:
    """Size and sparsity of one layer, as shown by ``prunemip info``."""

    index: int
    n_in: int
    n_out: int
    activation: str
    nnz: int
    dense_size: int
    neurons_without_inputs: int
    neurons_without_outputs: int

    @property
    def sparsity(self) -> float:
        """Fraction of the layer's weights that are zero."""
        return 1.0 - self.nnz / self.dense_size if self.dense_size else 0.0


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network of sparse affine layers with ReLU/identity activations."""

    layers: tuple[Layer, ...]
    input_spec: InputSpec
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers:
            raise PrunemipError("a network needs at least one layer")
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.input_spec.size != self.layers[0].n_in:
            raise PrunemipError(
                f"input shape {self.input_spec.shape} has {self.input_spec.size} entries "
                f"but the first layer takes {self.layers[0].n_in} inputs"
            )
        for index, layer in enumerate(self.layers):
            if layer.bias.shape != (layer.n_out,):
                raise PrunemipError(
                    f"layer {index}: bias has shape {layer.bias.shape}, expected ({layer.n_out},)"
                )
            if not np.all(np.isfinite(layer.weight.data)):
                raise PrunemipError(f"layer {index}: weights contain NaN or Inf")
            if not np.all(np.isfinite(layer.bias)):
                raise PrunemipError(f"layer {index}: bias contains NaN or Inf")
            if index and layer.n_in != self.layers[index - 1].n_out:
                raise PrunemipError(
                    f"layer {index} takes {layer.n_in} inputs but layer {index - 1} "
                    f"has {self.layers[index - 1].n_out} outputs"
                )

    @classmethod
    def from_arrays(
        cls,
        weights: Sequence[Any],
        biases: Sequence[Any],
        input_spec: InputSpec | None = None,
        activations: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Network:
        """Build a network from per-layer ``(n_out, n_in)`` weights and biases.

        Args:
            weights: per layer, a dense or sparse ``(n_out, n_in)`` matrix.
            biases: per layer, ``n_out`` values.
            input_spec: the inputs' shape and range (default: flat, unbounded).
            activations: per layer; default ReLU for hidden layers and identity for the last.
            metadata: free-form provenance.

        Returns:
            The network; :class:`PrunemipError` for mismatched counts or shapes, non-finite
            values or an unknown activation.
        """
        if len(weights) != len(biases):
            raise PrunemipError(f"{len(weights)} weight matrices but {len(biases)} bias vectors")
        if not weights:
            raise PrunemipError("a network needs at least one layer")
        if activations is None:
            activations = ["relu"] * (len(weights) - 1) + ["identity"]
        if len(activations) != len(weights):
            raise PrunemipError(f"{len(weights)} weight matrices but {len(activations)} activations")
        layers = tuple(Layer.create(w, b, a) for w, b, a in zip(weights, biases, activations, strict=True))
        spec = input_spec or InputSpec.create(layers[0].n_in)
        return cls(layers, spec, dict(metadata or {}))

    # ----------------------------------------------------------------- properties
    @property
    def n_inputs(self) -> int:
        """Inputs of the network."""
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        """Outputs (logits) of the network."""
        return self.layers[-1].n_out

    @property
    def widths(self) -> list[int]:
        """Neuron counts: inputs, every layer's outputs."""
        return [self.n_inputs, *(layer.n_out for layer in self.layers)]

    @property
    def nnz(self) -> int:
        """Nonzero weights over all layers."""
        return sum(layer.nnz for layer in self.layers)

    @property
    def dense_size(self) -> int:
        """Weights of the dense network of the same widths."""
        return sum(layer.n_in * layer.n_out for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Fraction of weights that are zero, over all layers."""
        return 1.0 - self.nnz / self.dense_size

    @property
    def n_relu(self) -> int:
        """ReLU neurons over all layers."""
        return sum(layer.n_out for layer in self.layers if layer.activation == "relu")

    @property
    def architecture(self) -> str:
        """A short name such as ``64-100-100-10``."""
        return "-".join(str(w) for w in self.widths)

    # ----------------------------------------------------------------- evaluation
    def _as_batch(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        array = np.asarray(x, dtype=np.float64)
        if array.size == self.n_inputs:
            return array.reshape(1, self.n_inputs), True
        if array.ndim >= 2 and array[0].size == self.n_inputs:
            return array.reshape(array.shape[0], self.n_inputs), False
        raise PrunemipError(
            f"input of shape {array.shape} does not match the network's {self.n_inputs} inputs "
            f"(input shape {self.input_spec.shape})"
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float64 logits for one input or a batch.

        Args:
            x: one input (any shape with ``n_inputs`` entries) or a batch ``(batch, …)``.

        Returns:
            Shape ``(n_outputs,)`` for one input, else ``(batch, n_outputs)``; an error for a wrong size.
        """
        return self.layers[-1].activate(self.pre_activations(x)[-1])

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Pre-activation values ``ẑ`` of every layer.

        Args:
            x: one input or a batch, as for :meth:`forward`.

        Returns:
            Per layer, ``(n_k,)`` for one input or ``(batch, n_k)`` for a batch.
        """
        h, single = self._as_batch(x)
        values = []
        for layer in self.layers:
            z = layer.apply(h)
            values.append(z[0] if single else z)
            h = layer.activate(z)
        return values

    def forward_with_preactivations(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits and every layer's pre-activations, for the reverse pass of :meth:`input_gradient`.

        Args:
            x: one input or a batch, as for :meth:`forward`.

        Returns:
            The logits, shape ``(batch, n_outputs)``, and per layer its pre-activations
            ``ẑ_k``, shape ``(batch, n_k)`` (2-D even for one input).
        """
        pre = [np.atleast_2d(z) for z in self.pre_activations(x)]
        return self.layers[-1].activate(pre[-1]), pre

    def input_gradient(
        self, pre: Sequence[np.ndarray], grad_output: np.ndarray, layer: int | None = None
    ) -> np.ndarray:
        """``∂(Σ grad_output ⊙ y)/∂x`` per row, by reverse mode through the sparse layers.

        Through a ReLU ``h_k = max(ẑ_k, 0)``: ``∂/∂ẑ_k = ∂/∂h_k ⊙ [ẑ_k > 0]`` (the subgradient
        0 at ``ẑ = 0``); through the affine map: ``∂/∂h_{k−1} = W_kᵀ ∂/∂ẑ_k`` (``h_{−1} = x``).

        Args:
            pre: the pre-activations of :meth:`forward_with_preactivations` at the points.
            grad_output: shape ``(batch, n)``: weights of the logits ``y`` (``n = n_outputs``),
                or, with ``layer``, of that layer's pre-activations ``ẑ_layer`` (``n = n_layer``).
            layer: differentiate ``ẑ_layer`` instead of the logits.

        Returns:
            The input gradients, shape ``(batch, n_inputs)``.
        """
        top = len(self.layers) - 1 if layer is None else layer
        g = grad_output
        for k in range(top, -1, -1):
            current = self.layers[k]
            if current.activation == "relu" and (k < top or layer is None):
                g = g * (pre[k] > 0.0)
            g = np.asarray((current.weight.T @ g.T).T)
        return g

    def predict(self, x: np.ndarray) -> np.ndarray | int:
        """Predicted class (argmax of the logits).

        Args:
            x: one input or a batch, as for :meth:`forward`.

        Returns:
            The class for one input, an array of classes for a batch.
        """
        logits = self.forward(x)
        return int(np.argmax(logits)) if logits.ndim == 1 else np.argmax(logits, axis=1)

    # ----------------------------------------------------------------- derived networks
    def with_input_spec(self, spec: InputSpec) -> Network:
        """The same layers with another input spec (e.g. a value range).

        Args:
            spec: the new input spec.

        Returns:
            A new network; weights are shared, not copied.
        """
        return replace(self, input_spec=spec)

    def with_metadata(self, **items: Any) -> Network:
        """The same network with ``items`` added to its metadata."""
        return replace(self, metadata={**self.metadata, **items})

    def fold_input_normalization(self, mean: Any, std: Any) -> Network:
        """Absorb ``(x - mean) / std`` into the first layer.

        With ``s = 1/std``: ``W ((x - mean) s) + b = (W diag(s)) x + (b - W (mean s))``.
        The result takes raw inputs; the normalisation is recorded in the input spec.

        Args:
            mean: a scalar or one value per input.
            std: likewise, finite and nonzero.

        Returns:
            The folded network (the first layer's sparsity pattern is kept).
        """
        n = self.n_inputs
        mean_vec = _as_bound_vector(mean, n, "normalisation mean")
        std_vec = _as_bound_vector(std, n, "normalisation std")
        if np.any(std_vec == 0) or not np.all(np.isfinite(std_vec)):
            raise PrunemipError("normalisation std must be finite and nonzero")
        scale = 1.0 / std_vec
        first = self.layers[0]
        weight = first.weight.copy()  # scale columns in place: keeps stored zeros (the mask)
        weight.data *= scale[weight.indices]
        bias = first.bias - first.weight @ (mean_vec * scale)
        folded = Layer.create(weight, bias, first.activation)
        spec = replace(
            self.input_spec,
            normalization={"mean": _compact_vector(mean_vec), "std": _compact_vector(std_vec)},
        )
        return Network((folded, *self.layers[1:]), spec, dict(self.metadata))

    # ----------------------------------------------------------------- reporting
    def summary(self) -> list[LayerSummary]:
        """Per layer: shape, activation, nonzeros and neurons without inputs or outputs."""
        rows = []
        for index, layer in enumerate(self.layers):
            w = layer.weight.copy()
            w.eliminate_zeros()
            rows.append(
                LayerSummary(
                    index=index,
                    n_in=layer.n_in,
                    n_out=layer.n_out,
                    activation=layer.activation,
                    nnz=layer.nnz,
                    dense_size=layer.n_in * layer.n_out,
                    neurons_without_inputs=int(np.sum(np.diff(w.indptr) == 0)),
                    neurons_without_outputs=(
                        int(np.sum(np.diff(self.layers[index + 1].weight.tocsc().indptr) == 0))
                        if index + 1 < len(self.layers)
                        else 0
                    ),
                )
            )
        return rows

    def format_summary(self) -> str:
        """A plain-text table of shape, nnz and sparsity per layer."""
        lines = [f"Network {self.architecture}: {self.nnz} nonzero weights, sparsity {self.sparsity:.1%}"]
        lines.append(
            f"{'layer':>5} {'shape':>12} {'act':>8} {'nnz':>9} {'sparsity':>9} {'no-in':>6} {'no-out':>6}"
        )
        for row in self.summary():
            lines.append(
                f"{row.index:>5} {f'{row.n_in}->{row.n_out}':>12} {row.activation:>8} {row.nnz:>9} "
                f"{row.sparsity:>9.1%} {row.neurons_without_inputs:>6} {row.neurons_without_outputs:>6}"
            )
        return "\n".join(lines)
