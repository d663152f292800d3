"""Write a :class:`Network` as an ONNX model that OMLT, VNN-COMP tools and ONNX runtimes read.

Each layer ``z = W h + b`` becomes one ``Gemm`` (``transB = 1``: ``W`` is stored as its
``(n_out, n_in)`` initialiser, ``b`` as a vector), followed by a ``Relu`` for a ReLU layer.
The graph takes flat rows, shape ``(batch, n_inputs)``, and returns the logits, shape
``(batch, n_outputs)``; opset 17, IR version 8. ONNX has no sparse ``Gemm``, so a pruned
weight is stored as an explicit zero: the file is as large as the dense network's, and
:func:`prunemip.onnx_io.load_onnx` recovers the pruning mask as the pattern of nonzero
weights.

The input spec (shape, value range, the normalisation ``(x − mean)/std`` already folded
into the first layer, the dataset) and the network's metadata are stored as JSON in the
model's ``metadata_props`` under :data:`~prunemip.onnx_io.INPUT_SPEC_KEY` and
:data:`~prunemip.onnx_io.METADATA_KEY`, so prunemip reads the input range back without
``--input-range``; other tools ignore them (OMLT takes the bounds as an argument).

Precision. ``float64`` (the default) stores the network's weights bit for bit. ``float32``
rounds every weight and bias to the nearest float32, a relative change of at most
``u₃₂ = 2⁻²⁴`` each (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
SIAM 2002, §2.1), and a runtime evaluating it in float32 arithmetic adds up to
``γ_n·|W||h|`` per layer (``γ_n = n·u₃₂/(1 − n·u₃₂)``, §3.1). The float32 model is a
different function: a verdict proved on the float64 network need not hold for it. Its
metadata says so (``weights_rounded_to: float32``, which ``prunemip info`` shows), and
prunemip reads the rounded weights back exactly (every float32 is a float64), so a verdict
on the reloaded file is about the rounded weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from prunemip.atomic import atomic_write_bytes
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from prunemip.onnx_io import INPUT_SPEC_KEY, METADATA_KEY, ROUNDED_KEY

#: Element types the writer offers, by name.
PRECISIONS: dict[str, type[np.floating]] = {"float64": np.float64, "float32": np.float32}
#: Higham's unit roundoff of float32.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
OPSET = 17
IR_VERSION = 8


def _precision(precision: str) -> type[np.floating]:
    if precision not in PRECISIONS:
        raise PrunemipError(f"ONNX precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def network_to_onnx(network: Network, precision: str = "float64") -> onnx.ModelProto:
    """The network as an ONNX model: ``Gemm`` (+ ``Relu``) per layer, its input spec in the metadata.

    Args:
        network: the network to export.
        precision: ``"float64"`` (exact) or ``"float32"`` (every weight and bias rounded to
            nearest; a different function, see the module docstring).

    Returns:
        The model (opset 17, IR version 8), input ``input`` of shape ``(batch, n_inputs)``,
        output ``output``.

    Raises:
        PrunemipError: for an unknown precision, or metadata that is not JSON-serialisable.
    """
    dtype = _precision(precision)
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes, initializers = [], []
    current = "input"
    for index, layer in enumerate(network.layers):
        weight = numpy_helper.from_array(layer.weight.toarray().astype(dtype), f"layer{index}.weight")
        bias = numpy_helper.from_array(layer.bias.astype(dtype), f"layer{index}.bias")
        initializers += [weight, bias]
        outputs = [f"layer{index}.z"]
        nodes.append(
            helper.make_node(
                "Gemm",
                [current, weight.name, bias.name],
                outputs,
                name=f"layer{index}.gemm",
                alpha=1.0,
                beta=1.0,
                transA=0,
                transB=1,
            )
        )
        if layer.activation == "relu":
            outputs = [f"layer{index}.h"]
            nodes.append(helper.make_node("Relu", [nodes[-1].output[0]], outputs, name=f"layer{index}.relu"))
        current = outputs[0]
    nodes[-1].output[0] = "output"
    graph = helper.make_graph(
        nodes,
        "prunemip",
        [helper.make_tensor_value_info("input", element, ["batch", network.n_inputs])],
        [helper.make_tensor_value_info("output", element, ["batch", network.n_outputs])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="prunemip")
    model.ir_version = IR_VERSION
    metadata = dict(network.metadata)
    if precision == "float32":
        metadata[ROUNDED_KEY] = "float32"
    spec = network.input_spec
    text = {INPUT_SPEC_KEY: spec.to_dict(), METADATA_KEY: metadata}
    try:
        props = {key: json.dumps(value, default=_plain) for key, value in text.items()}
    except (TypeError, ValueError) as exc:
        raise PrunemipError(f"network metadata cannot be stored in ONNX: {exc}") from None
    helper.set_model_props(model, props)
    model.doc_string = f"prunemip network {network.architecture}, {input_range_text(spec)}, {precision}"
    return model


def input_range_text(spec: InputSpec) -> str:
    """``inputs in [lo, hi]`` (the smallest lower and largest upper bound), or ``unbounded inputs``.

    Args:
        spec: the network's input spec.

    Returns:
        The phrase.
    """
    return (
        f"inputs in [{spec.lower.min():g}, {spec.upper.max():g}]" if spec.is_bounded else "unbounded inputs"
    )


def _plain(value: object) -> object:
    """numpy scalars and arrays as JSON numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def float32_rounding(network: Network) -> float:
    """The largest change of any weight or bias when rounded to float32 (at most ``2⁻²⁴·|w|`` each).

    Args:
        network: the network.

    Returns:
        ``max |fl₃₂(w) − w|`` over every stored weight and bias.
    """
    values = np.concatenate([np.concatenate([layer.weight.data, layer.bias]) for layer in network.layers])
    return float(np.max(np.abs(values.astype(np.float32).astype(np.float64) - values), initial=0.0))


def save_onnx(network: Network, path: str | Path, precision: str = "float64") -> Path:
    """Write ``network`` as ONNX (see :func:`network_to_onnx`), atomically.

    Args:
        network: the network to export.
        path: the ``.onnx`` file.
        precision: ``"float64"`` (exact) or ``"float32"`` (rounded: a different function).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: for an unknown precision, a network too large for one protobuf (2 GiB),
            unserialisable metadata, or a file that cannot be written.
    """
    model = network_to_onnx(network, precision)
    try:
        data = model.SerializeToString()
    except ValueError as exc:
        raise PrunemipError(f"cannot write {path}: {exc}") from None
    return atomic_write_bytes(path, data)
