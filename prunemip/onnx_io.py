"""Read a feed-forward ReLU network from an ONNX file (with the ``onnx`` package only).

The graph is walked in topological order while tracking one tensor, *the activation*,
and a table of constants (initializers and ``Constant`` outputs). Affine layers are
``Gemm`` or ``MatMul`` + ``Add``; ``Relu`` closes a layer; ``Flatten``/``Reshape`` only
relabel the activation's shape (prunemip models a single input, batch size 1). An
elementwise ``Sub``/``Add``/``Mul``/``Div`` by constants before the first affine layer
is an input normalisation ``(x - mean) / std`` and is folded into the first layer.

A model written by :mod:`prunemip.onnx_export` carries its input spec (shape, value range,
the folded normalisation, the dataset) and the network's metadata as JSON in its
``metadata_props`` (:data:`INPUT_SPEC_KEY`, :data:`METADATA_KEY`); they are read back, so
its input range needs no ``--input-range``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network

SUPPORTED_OPS = (
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Flatten",
    "Reshape",
    "Identity",
    "Constant",
    "Sub",
    "Div",
    "Mul",
)
_ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
#: ``metadata_props`` keys prunemip writes: the input spec and the network's metadata, as JSON.
INPUT_SPEC_KEY = "prunemip.input_spec"
METADATA_KEY = "prunemip.metadata"
#: Network metadata key naming the precision a writer rounded the weights to (e.g. ``float32``).
ROUNDED_KEY = "weights_rounded_to"


@dataclass
class _Reader:
    """State of the graph walk: the activation, constants, finished layers, normalisation."""

    activation: str
    shape: tuple[int, ...]
    constants: dict[str, np.ndarray]
    weights: list[np.ndarray] = field(default_factory=list)
    biases: list[np.ndarray] = field(default_factory=list)
    activations: list[str] = field(default_factory=list)
    # The last layer's output is still its pre-activation (a bias or Relu may follow).
    open_layer: bool = False
    # Input normalisation seen so far, as x' = scale * x + shift (flat vectors).
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None

    # ------------------------------------------------------------ operands
    def operands(self, node: onnx.NodeProto, label: str) -> list[np.ndarray | None]:
        """Each input as its constant value, or ``None`` for the activation."""
        values: list[np.ndarray | None] = []
        for name in node.input:
            if name == self.activation:
                values.append(None)
            elif name in self.constants:
                values.append(self.constants[name])
            elif name:
                raise PrunemipError(
                    f"ONNX node {label!r} ({node.op_type}) reads tensor {name!r}, which is neither "
                    "the network's current activation nor a constant; prunemip reads a single "
                    "chain of layers"
                )
        if all(value is not None for value in values):
            raise PrunemipError(
                f"ONNX node {label!r} ({node.op_type}) computes on constants only; export the "
                "model with constant folding (torch.onnx.export(..., do_constant_folding=True))"
            )
        return values

    def broadcast(self, constant: np.ndarray, label: str) -> np.ndarray:
        """A constant broadcast to the activation's shape, flattened."""
        try:
            if np.broadcast_shapes(constant.shape, self.shape) != self.shape:
                raise ValueError
            return np.broadcast_to(constant.astype(np.float64), self.shape).reshape(-1)
        except ValueError:
            raise PrunemipError(
                f"ONNX node {label!r}: constant of shape {constant.shape} does not broadcast to "
                f"the activation's shape {self.shape}"
            ) from None

    def feature_count(self, label: str, transposed: bool = False) -> int:
        """The activation's size, checking that it is a (row or column) vector."""
        leading = self.shape[-1:] if transposed else self.shape[:-1]
        if int(np.prod(leading)) != 1 or (transposed and len(self.shape) != 2):
            layout = "a column (n, 1)" if transposed else "a vector (1, ..., 1, n)"
            raise PrunemipError(f"ONNX node {label!r}: the activation has shape {self.shape}, not {layout}")
        return int(np.prod(self.shape))

    # ------------------------------------------------------------ layers
    def add_layer(self, weight: np.ndarray, shape: tuple[int, ...]) -> None:
        """Start an identity layer ``weight @ h`` whose output has ``shape``."""
        self.weights.append(weight)
        self.biases.append(np.zeros(weight.shape[0]))
        self.activations.append("identity")
        self.open_layer = True
        self.shape = shape

    def gemm(self, node: onnx.NodeProto, label: str) -> None:
        attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        a, b, *rest = self.operands(node, label)
        c = rest[0] if rest else None
        if a is not None or b is None or (rest and c is None):
            raise PrunemipError(
                f"ONNX node {label!r} (Gemm) must take the activation as its first input and "
                "constants as weight and bias"
            )
        n_in = self.feature_count(label, transposed=bool(attrs.get("transA", 0)))
        matrix = b.astype(np.float64)
        if matrix.ndim != 2:
            raise PrunemipError(f"ONNX node {label!r} (Gemm): weight has shape {b.shape}, expected 2-D")
        weight = float(attrs.get("alpha", 1.0)) * (matrix if attrs.get("transB", 0) else matrix.T)
        if weight.shape[1] != n_in:
            raise PrunemipError(
                f"ONNX node {label!r} (Gemm): weight of shape {b.shape} does not take {n_in} inputs"
            )
        self.add_layer(weight, (1, weight.shape[0]))
        if c is not None:
            self.biases[-1] = float(attrs.get("beta", 1.0)) * self.broadcast(c, label)

    def matmul(self, node: onnx.NodeProto, label: str) -> None:
        a, b = self.operands(node, label)
        if a is not None or b is None or b.ndim != 2:
            raise PrunemipError(
                f"ONNX node {label!r} (MatMul) must multiply the activation by a constant 2-D "
                "matrix (activation @ W)"
            )
        n_in = self.feature_count(label)
        if b.shape[0] != n_in:
            raise PrunemipError(
                f"ONNX node {label!r} (MatMul): weight of shape {b.shape} does not take {n_in} inputs"
            )
        self.add_layer(b.T.astype(np.float64), (*self.shape[:-1], b.shape[1]))

    def relu(self, label: str) -> None:
        if not self.weights:
            raise PrunemipError(
                f"ONNX node {label!r} (Relu) comes before any affine layer; prunemip cannot apply "
                "an activation to the inputs"
            )
        self.activations[-1] = "relu"
        self.open_layer = False

    def elementwise(self, node: onnx.NodeProto, label: str) -> None:
        """A bias ``Add`` after an affine layer, or an input normalisation step."""
        x, y = self.operands(node, label)
        constant = y if x is None else x
        if constant is None:
            raise PrunemipError(
                f"ONNX node {label!r} ({node.op_type}) combines the activation with itself, "
                "which prunemip does not support"
            )
        values = self.broadcast(constant, label)
        if self.weights:
            if node.op_type != "Add" or not self.open_layer:
                raise PrunemipError(
                    f"ONNX node {label!r} ({node.op_type}): prunemip supports elementwise "
                    "Sub/Div/Mul only as input normalisation before the first affine layer, and "
                    "Add only as the bias right after an affine layer"
                )
            self.biases[-1] = self.biases[-1] + values
            return
        if self.scale is None or self.shift is None:
            self.scale, self.shift = np.ones(values.size), np.zeros(values.size)
        op = node.op_type
        if op == "Add":
            self.shift = self.shift + values
        elif op == "Sub" and x is None:
            self.shift = self.shift - values
        elif op == "Sub":
            self.scale, self.shift = -self.scale, values - self.shift
        elif op == "Mul":
            self.scale, self.shift = self.scale * values, self.shift * values
        elif x is None:
            self.scale, self.shift = self.scale / values, self.shift / values
        else:
            raise PrunemipError(
                f"ONNX node {label!r} (Div) divides a constant by the activation, which is not affine"
            )

    def reshape(self, node: onnx.NodeProto, label: str) -> None:
        x, target = self.operands(node, label)
        if x is not None or target is None:
            raise PrunemipError(f"ONNX node {label!r} (Reshape) needs a constant shape input")
        attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        dims = [int(d) for d in target.reshape(-1)]
        if not attrs.get("allowzero", 0):
            dims = [self.shape[i] if d == 0 and i < len(self.shape) else d for i, d in enumerate(dims)]
        size = int(np.prod(self.shape))
        known = int(np.prod([d for d in dims if d != -1]))
        if dims.count(-1) == 1 and known > 0 and size % known == 0:
            dims[dims.index(-1)] = size // known
        if dims.count(-1) or int(np.prod(dims)) != size:
            raise PrunemipError(
                f"ONNX node {label!r} (Reshape): cannot reshape {self.shape} to {target.tolist()}"
            )
        self.shape = tuple(dims)

    def flatten(self, node: onnx.NodeProto, label: str) -> None:
        attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        axis = int(attrs.get("axis", 1))
        axis += len(self.shape) if axis < 0 else 0
        if not 0 <= axis <= len(self.shape):
            raise PrunemipError(f"ONNX node {label!r} (Flatten): axis {axis} is out of range")
        self.shape = (int(np.prod(self.shape[:axis])), int(np.prod(self.shape[axis:])))

    # ------------------------------------------------------------ driver
    def visit(self, node: onnx.NodeProto, label: str) -> None:
        op = node.op_type
        if op == "Constant":
            self.constants[node.output[0]] = _constant_value(node, label)
            return
        if op not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
            raise PrunemipError(
                f"ONNX node {label!r} has op type {op}, which prunemip does not support "
                f"(supported: {', '.join(SUPPORTED_OPS)})"
            )
        if op == "Identity" and node.input[0] in self.constants:
            self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        if op == "Gemm":
            self.gemm(node, label)
        elif op == "MatMul":
            self.matmul(node, label)
        elif op in _ELEMENTWISE:
            self.elementwise(node, label)
        elif op == "Reshape":
            self.reshape(node, label)
        else:
            self.operands(node, label)  # checks the input is the activation
            if op == "Relu":
                self.relu(label)
            elif op == "Flatten":
                self.flatten(node, label)
        self.activation = node.output[0]


def _constant_value(node: onnx.NodeProto, label: str) -> np.ndarray:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
            return np.asarray(onnx.helper.get_attribute_value(attr))
    raise PrunemipError(f"ONNX node {label!r} (Constant) holds no numeric tensor")


def _input_shape(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    """The graph input's shape with a batch dimension of 1 (fixed or symbolic)."""
    dims = value.type.tensor_type.shape.dim
    shape: list[int | None] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) > 1 and shape[0] in (None, 1):
        shape[0] = 1
    if not shape or any(d is None or d <= 0 for d in shape):
        raise PrunemipError(
            f"ONNX input {value.name!r} has shape {shape}; prunemip needs a fixed input shape "
            "(only the batch dimension may be symbolic)"
        )
    return tuple(int(d) for d in shape if d is not None)


def _topological(graph: onnx.GraphProto, available: set[str]) -> list[onnx.NodeProto]:
    """Nodes in an order where every input is produced first (stable for sorted graphs)."""
    pending = deque(graph.node)
    order: list[onnx.NodeProto] = []
    stalled = 0
    while pending:
        node = pending.popleft()
        if all(not name or name in available for name in node.input):
            order.append(node)
            available.update(node.output)
            stalled = 0
        else:
            pending.append(node)
            stalled += 1
            if stalled > len(pending):
                missing = next(n for n in node.input if n and n not in available)
                raise PrunemipError(
                    f"ONNX node {node.name or node.output[0]!r} reads tensor {missing!r}, which "
                    "no node produces"
                )
    return order


def load_onnx(path: str | Path, input_spec: InputSpec | None = None) -> Network:
    """Read a feed-forward ReLU network from an ONNX file as a float64 :class:`Network`.

    Args:
        path: the ``.onnx`` file.
        input_spec: the inputs' shape and range (default: the spec recorded in the model's
            metadata, else the graph's input shape, unbounded; a leading batch dimension of 1
            is dropped).

    Returns:
        The network, with a leading input normalisation folded into its first layer and the
        recorded metadata.

    Raises:
        PrunemipError: for an unreadable file, a graph that is not one chain of
            :data:`SUPPORTED_OPS` with one input and one output, or unreadable prunemip metadata.
    """
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise PrunemipError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise PrunemipError(
            f"{path}: the ONNX graph has {len(inputs)} inputs and {len(graph.output)} outputs; "
            "prunemip reads a network with one input and one output"
        )
    shape = _input_shape(inputs[0])
    reader = _Reader(inputs[0].name, shape, constants)
    for index, node in enumerate(_topological(graph, {inputs[0].name, *constants})):
        reader.visit(node, node.name or (node.output[0] if node.output else f"#{index}"))
    if not reader.weights:
        raise PrunemipError(f"{path}: the ONNX graph has no Gemm or MatMul layer")
    if graph.output[0].name != reader.activation:
        raise PrunemipError(
            f"{path}: the ONNX graph's output {graph.output[0].name!r} is not the end of its chain of layers"
        )
    recorded_spec, metadata = _recorded(model, path, reader.weights[0].shape[1])
    batch_dropped = len(shape) > 1 and shape[0] == 1
    if input_spec is None:
        input_spec = recorded_spec or InputSpec.create(shape[1:] if batch_dropped else shape)
    network = Network.from_arrays(reader.weights, reader.biases, input_spec, reader.activations, metadata)
    if reader.scale is None or reader.shift is None:
        return network
    with np.errstate(divide="ignore", invalid="ignore"):
        std = 1.0 / reader.scale
        mean = -reader.shift * std
    return network.fold_input_normalization(mean, std)


def _recorded(model: onnx.ModelProto, path: str | Path, n_inputs: int) -> tuple[InputSpec | None, dict]:
    """The input spec and metadata prunemip recorded in ``metadata_props`` (``None`` and ``{}`` if none)."""
    props = {prop.key: prop.value for prop in model.metadata_props}
    try:
        spec = InputSpec.from_dict(json.loads(props[INPUT_SPEC_KEY])) if INPUT_SPEC_KEY in props else None
        metadata = json.loads(props.get(METADATA_KEY, "{}"))
        if not isinstance(metadata, dict):
            raise ValueError(f"{METADATA_KEY} is not a JSON object")
    except (ValueError, TypeError, KeyError, PrunemipError) as exc:
        raise PrunemipError(f"{path}: unreadable prunemip metadata ({_first_line(exc)})") from None
    if spec is not None and spec.size != n_inputs:
        raise PrunemipError(
            f"{path}: the metadata's input shape {spec.shape} has {spec.size} entries but the graph "
            f"takes {n_inputs} inputs"
        )
    return spec, metadata


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
