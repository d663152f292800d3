"""prunemip inside OMLT: a formulation an ``OmltBlock`` accepts, and conversions both ways.

For an OMLT user the change is one line::

    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(net))       # before
    m.nn.build_formulation(PrunemipFormulation(net))       # after: same block, same inputs/outputs

``net`` may be the OMLT ``NetworkDefinition`` the user already has (dense layers with
``relu``/``linear`` activations, its ``scaled_input_bounds`` and an affine scaling
object such as ``OffsetScaling`` are honoured) or a prunemip
:class:`~prunemip.network.Network`. ``m.nn.inputs`` and ``m.nn.outputs`` keep OMLT's
meaning (unscaled values, OMLT's indexes); underneath sits prunemip's MIP: only
surviving weights, no binary for a stable neuron, prunemip's bounds. OMLT's
``scaled_inputs``/``scaled_outputs`` variables are not created: the scaling is folded
into the first and last layers.

:func:`to_omlt_network_definition` goes the other way, for users who want OMLT's own
formulations on a prunemip network.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from omlt.formulation import _PyomoFormulation
from omlt.neuralnet import NetworkDefinition
from omlt.neuralnet.layer import DenseLayer, InputLayer

from prunemip.embed.base import EmbeddedNetwork, InputBounds, encode_box, own_input_box
from prunemip.embed.pyomo import embed_in_block, variable_values
from prunemip.encoders.bigm import DEFAULT_FORMULATION
from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network

__all__ = ["PrunemipFormulation", "from_omlt_network_definition", "to_omlt_network_definition"]

_ACTIVATIONS = {"relu": "relu", "linear": "identity", None: "identity"}


def _key(index: Any) -> Hashable:
    """An OMLT index as Pyomo keys it (a 1-tuple becomes its element)."""
    return index[0] if isinstance(index, tuple) and len(index) == 1 else index


def to_omlt_network_definition(network: Network, input_bounds: InputBounds = "network") -> NetworkDefinition:
    """An OMLT ``NetworkDefinition`` of ``network``, for OMLT's own formulations.

    Args:
        network: the prunemip network to convert.
        input_bounds: the definition's ``scaled_input_bounds``, keyed by input index ``k``:
            the network's InputSpec range (``"network"``, the default), ``(lower, upper)``
            or an InputRegion box.

    Returns:
        A chain of OMLT dense layers (dense weights, ``relu``/``linear`` activations).

    Raises:
        PrunemipError: a bound is missing or infinite (OMLT cannot build a big-M
            formulation without it).
    """
    n = network.n_inputs
    box = own_input_box(
        network, [f"inputs[{k}]" for k in range(n)], input_bounds, hint="give the network an InputSpec range"
    )
    definition = NetworkDefinition(
        scaled_input_bounds={k: (float(box.lower[k]), float(box.upper[k])) for k in range(n)}
    )
    previous: Any = InputLayer([n])
    definition.add_layer(previous)
    for layer in network.layers:
        dense = DenseLayer(
            [layer.n_in],
            [layer.n_out],
            layer.weight.toarray().T.copy(),
            layer.bias.copy(),
            activation="relu" if layer.activation == "relu" else "linear",
        )
        definition.add_layer(dense)
        definition.add_edge(previous, dense)
        previous = dense
    return definition


@dataclass(frozen=True, eq=False)
class _OmltNetwork:
    network: Network
    input_indexes: list[Any]
    output_indexes: list[Any]


def _size(shape: Any) -> int:
    return int(math.prod(int(s) for s in shape))


def _affine(probe: Any, keys: list[Hashable], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Slope and offset of an elementwise affine map, read by probing it at 0, 1 and 2."""
    try:
        at = [probe({k: float(v) for k in keys}) for v in (0.0, 1.0, 2.0)]
        values = [np.array([float(point[k]) for k in keys]) for point in at]
    except Exception as error:  # a scaler that is not numeric-friendly
        raise PrunemipError(f"cannot read the {what} scaling as an affine map: {error}") from None
    offset, slope = values[0], values[1] - values[0]
    if not np.allclose(values[2], offset + 2.0 * slope, rtol=1e-9, atol=1e-12):
        raise PrunemipError(f"the {what} scaling is not affine; prunemip folds only affine scalings")
    if np.any(slope == 0) or not np.all(np.isfinite(slope)) or not np.all(np.isfinite(offset)):
        raise PrunemipError(f"the {what} scaling has a zero or non-finite factor")
    return slope, offset


def _read_definition(definition: Any) -> _OmltNetwork:
    """The chain InputLayer → DenseLayer… of an OMLT definition as a prunemip Network."""
    inputs = list(definition.input_nodes)
    outputs = list(definition.output_nodes)
    if len(inputs) != 1 or len(outputs) != 1:
        raise PrunemipError("prunemip reads OMLT networks with exactly one input and one output layer")
    current = inputs[0]
    if type(current) is not InputLayer:
        raise PrunemipError(f"the first OMLT layer is {current}, expected an InputLayer")
    input_indexes = list(current.input_indexes)
    n_previous = _size(current.output_size)
    weights, biases, activations = [], [], []
    while True:
        following = list(definition.successors(current))
        if not following:
            break
        if len(following) != 1:
            raise PrunemipError(f"OMLT layer {current} feeds {len(following)} layers; prunemip reads chains")
        current = following[0]
        index = len(weights) + 1
        if type(current) is not DenseLayer:
            raise PrunemipError(
                f"OMLT layer {index} is {current}; prunemip encodes dense layers only "
                "(use OMLT's own formulations for other layers)"
            )
        if current.activation not in _ACTIVATIONS:
            raise PrunemipError(
                f"OMLT layer {index} has activation {current.activation!r}; prunemip encodes "
                "relu and linear layers"
            )
        in_size, out_size = list(current.input_size), list(current.output_size)
        if _size(in_size[:-1]) != 1 or _size(out_size[:-1]) != 1:
            raise PrunemipError(
                f"OMLT layer {index} has input size {in_size} and output size {out_size}; prunemip "
                "reads one sample (all dimensions but the last of size 1)"
            )
        matrix = np.asarray(current.weights, dtype=np.float64)
        if matrix.shape != (in_size[-1], out_size[-1]) or in_size[-1] != n_previous:
            raise PrunemipError(
                f"OMLT layer {index}: weights of shape {matrix.shape} do not fit input size {in_size} "
                f"after a layer of {n_previous} outputs"
            )
        weights.append(sp.csr_matrix(matrix.T))
        biases.append(np.asarray(current.biases, dtype=np.float64).reshape(-1))
        activations.append(_ACTIVATIONS[current.activation])
        n_previous = out_size[-1]
    if not weights:
        raise PrunemipError("the OMLT network has no dense layer")
    output_indexes = list(current.output_indexes)
    n_in = len(input_indexes)
    in_keys = [_key(i) for i in input_indexes]
    slope, offset = np.ones(n_in), np.zeros(n_in)
    scaler = definition.scaling_object
    if scaler is not None:
        slope, offset = _affine(scaler.get_scaled_input_expressions, in_keys, "input")
        # scaled x = slope·x + offset: fold into the first layer
        first = weights[0]
        biases[0] = biases[0] + first @ offset
        weights[0] = (first @ sp.diags(slope)).tocsr()
        out_slope, out_offset = _affine(
            scaler.get_unscaled_output_expressions, [_key(j) for j in output_indexes], "output"
        )
        if activations[-1] == "identity":
            weights[-1] = (sp.diags(out_slope) @ weights[-1]).tocsr()
            biases[-1] = out_slope * biases[-1] + out_offset
        else:  # an unscaling layer after a ReLU output layer
            weights.append(sp.diags(out_slope).tocsr())
            biases.append(out_offset)
            activations.append("identity")
    lower, upper = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    scaled = definition.scaled_input_bounds
    if scaled:
        for k, (index, key) in enumerate(zip(input_indexes, in_keys, strict=True)):
            pair = scaled.get(key, scaled.get(index))
            if pair is None:
                continue
            ends = [(np.nan if v is None else float(v) - offset[k]) / slope[k] for v in pair]
            lo, hi = min(ends), max(ends)
            lower[k] = -np.inf if np.isnan(lo) else lo
            upper[k] = np.inf if np.isnan(hi) else hi
    shape = tuple(int(s) for s in inputs[0].input_size)
    spec = InputSpec.create(shape, lower, upper)
    layers = tuple(Layer.create(w, b, a) for w, b, a in zip(weights, biases, activations, strict=True))
    network = Network(layers, spec, {"source": "omlt"})
    return _OmltNetwork(network, input_indexes, output_indexes)


def from_omlt_network_definition(definition: Any) -> Network:
    """A prunemip Network of an OMLT ``NetworkDefinition``.

    Args:
        definition: a chain of dense ``relu``/``linear`` OMLT layers. Its affine scaling
            object is folded into the first and last layers (the Network takes and returns
            unscaled values); its ``scaled_input_bounds``, unscaled, become the InputSpec range.

    Returns:
        The Network; zero weights are dropped (prune before converting).

    Raises:
        PrunemipError: a layer prunemip cannot encode, a non-affine scaling, or a graph
            that is not a chain.
    """
    return _read_definition(definition).network


class PrunemipFormulation(_PyomoFormulation, EmbeddedNetwork):
    """An OMLT formulation carrying prunemip's network, bounds and big-M MIP.

    The MIP is built at construction (``.mip``), so bad bounds fail early.

    Args:
        network: an OMLT ``NetworkDefinition`` or a prunemip ``Network``.
        input_bounds: the input box the neuron bounds are computed over, which becomes the
            bounds of ``block.inputs``: by default the definition's ``scaled_input_bounds``
            (unscaled) or the Network's InputSpec range; also ``(lower, upper)`` or an
            InputRegion box.
        bounds_method: ``"linear"`` by default, ``"ia"``, ``"lp"``… (as the Pyomo block's).
        formulation: ``encode``'s (``"substituted"`` or ``"variable"``).

    Raises:
        PrunemipError: ``network`` is neither, OMLT's network cannot be read, or an input
            has a missing or infinite bound.
    """

    def __init__(
        self,
        network: Any,
        input_bounds: InputBounds = None,
        *,
        bounds_method: str | None = None,
        formulation: str = DEFAULT_FORMULATION,
    ) -> None:
        super().__init__()
        if isinstance(network, Network):
            net = network
            self._input_indexes: list[Any] = list(range(net.n_inputs))
            self._output_indexes: list[Any] = list(range(net.n_outputs))
        elif hasattr(network, "input_nodes") and hasattr(network, "successors"):
            read = _read_definition(network)
            net = read.network
            self._input_indexes, self._output_indexes = read.input_indexes, read.output_indexes
        else:
            raise PrunemipError(
                f"PrunemipFormulation takes an OMLT NetworkDefinition or a prunemip Network, "
                f"not {type(network).__name__}"
            )
        self._box = own_input_box(
            net,
            [f"inputs[{_key(index)}]" for index in self._input_indexes],
            "network" if input_bounds is None else input_bounds,
            hint="give the network scaled_input_bounds (OMLT) or an InputSpec range (prunemip)",
        )
        self._mip = encode_box(net, self._box, bounds_method=bounds_method, formulation=formulation)

    @property
    def input_indexes(self) -> list[Any]:
        return list(self._input_indexes)

    @property
    def output_indexes(self) -> list[Any]:
        return list(self._output_indexes)

    def _build_formulation(self) -> None:
        block = self.block
        embed_in_block(
            block,
            self._mip,
            self._box,
            [block.inputs[i] for i in self._input_indexes],
            [block.outputs[j] for j in self._output_indexes],
            own_inputs=True,
            link_outputs=False,
        )

    # ------------------------------------------------------------------ introspection
    @property
    def mip(self) -> MipModel:
        """The MipModel this formulation embeds (columns, rows, neuron statuses, bounds)."""
        return self._mip

    def _values(self, component: str, indexes: list[Any]) -> np.ndarray:
        block = self.block
        if block is None:
            raise PrunemipError("the formulation is not built: call OmltBlock.build_formulation first")
        values = variable_values([getattr(block, component)[i] for i in indexes])
        if values is None:
            raise PrunemipError(f"an OMLT block {component[:-1]} has no value; solve the model first")
        return values

    def input_values(self) -> np.ndarray:
        return self._values("inputs", self._input_indexes)

    def output_values(self) -> np.ndarray:
        return self._values("outputs", self._output_indexes)

    def _stats_title(self) -> str:
        block = self.block
        return "OMLT formulation" + ("" if block is None else f" of block {block.name}")
