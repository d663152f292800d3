"""ONNX → Network: torch exports, folded normalisation, Gemm and MatMul+Add forms, node order."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from prunemip.model_io import load_network
from prunemip.onnx_io import load_onnx
from tests.test_model_io import assert_matches, inputs, mlp, save_graph


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (example,), str(path), dynamo=False)
    return path


# ------------------------------------------------------------------ ONNX
def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    model = mlp()
    path = _export_onnx(model, inputs((6,), batch=1), tmp_path / "model.onnx")
    network = load_network(path)
    assert network.widths == [6, 8, 5, 3] and network.input_spec.normalization is None
    assert_matches(network, model, inputs((6,)))


class _Normalised(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([[0.5], [-0.25]]))
        self.register_buffer("std", torch.tensor([[2.0], [0.5]]))
        self.mlp = nn.Sequential(nn.Flatten(), *mlp((6, 5, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.mean) / self.std)


def test_onnx_normalisation_is_folded(tmp_path: Path) -> None:
    model = _Normalised().eval()
    path = _export_onnx(model, inputs((2, 3), batch=1), tmp_path / "norm.onnx")
    network = load_network(path)
    assert network.input_spec.shape == (2, 3)
    assert network.input_spec.normalization == {
        "mean": [0.5, 0.5, 0.5, -0.25, -0.25, -0.25],
        "std": [2.0, 2.0, 2.0, 0.5, 0.5, 0.5],
    }
    assert_matches(network, model, inputs((2, 3)))


def test_onnx_gemm_trans_b0_alpha_beta(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    w2, b2 = rng.normal(size=(2, 5)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z1"], name="gemm1", alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["z1"], ["h1"], name="relu1"),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["y"], name="gemm2", transB=1),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    network = load_onnx(save_graph(tmp_path / "gemm.onnx", nodes, inits, 4, 2))
    x = rng.normal(size=(10, 4))
    expected = np.maximum(0.5 * x @ w1.astype(np.float64) + 2.0 * b1, 0) @ w2.T.astype(np.float64) + b2
    np.testing.assert_allclose(network.forward(x), expected, atol=1e-12)


def test_onnx_matmul_add_either_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w2, b2 = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(w2)),
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["z1"], name="add1"),
        helper.make_node("Relu", ["z1"], ["h1"], name="relu1"),
        helper.make_node("Identity", ["h1"], ["h1b"], name="id"),
        helper.make_node("MatMul", ["h1b", "w2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["b2", "m2"], ["y"], name="add2"),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (b2, "b2"))]
    network = load_onnx(save_graph(tmp_path / "mm.onnx", nodes, inits, 3, 2))
    assert [layer.activation for layer in network.layers] == ["relu", "identity"]
    x = rng.normal(size=(10, 3))
    expected = np.maximum(x @ w1.astype(np.float64) + b1, 0) @ w2.astype(np.float64) + b2
    np.testing.assert_allclose(network.forward(x), expected, atol=1e-12)


def test_onnx_nodes_out_of_order_and_reshape(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], name="gemm", transB=1),
        helper.make_node("Reshape", ["scaled", "shape"], ["flat"], name="reshape"),
        helper.make_node("Mul", ["x", "k"], ["scaled"], name="scale"),
    ]
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array([-1, 6], dtype=np.int64), "shape"),
        numpy_helper.from_array(np.array(4.0, dtype=np.float32), "k"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "r.onnx")
    network = load_network(tmp_path / "r.onnx")
    assert network.input_spec.shape == (2, 3)
    assert network.input_spec.normalization == {"mean": 0.0, "std": 0.25}
    x = rng.normal(size=(5, 2, 3))
    expected = 4.0 * x.reshape(5, 6) @ w.T.astype(np.float64) + b
    np.testing.assert_allclose(network.forward(x), expected, atol=1e-12)
