"""Model conversion, loading and saving: torch, TorchScript, ONNX and prunemip's format."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import subprocess
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import scipy.sparse as sp
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.nn.utils import prune

from prunemip import InputSpec, Network, PrunemipError
from prunemip.model_io import load_network, save_network, save_torch_checkpoint
from prunemip.onnx_io import load_onnx
from prunemip.torch_io import network_from_module, network_from_state_dict, network_to_module


# ------------------------------------------------------------------ helpers
def _mlp(sizes: tuple[int, ...] = (6, 8, 5, 3), *, bias: bool = True, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        modules.append(nn.Linear(n_in, n_out, bias=bias))
        if index < len(sizes) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def _inputs(shape: tuple[int, ...], seed: int = 1, batch: int = 16) -> torch.Tensor:
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed))


def _assert_matches(network: Network, module: nn.Module, x: torch.Tensor) -> None:
    """Float64 network logits equal the torch module's float32 logits."""
    with torch.no_grad():
        expected = module(x).double().numpy()
    got = network.forward(x.double().numpy())
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (example,), str(path), dynamo=False)
    return path


def _save_graph(path: Path, nodes: list, initializers: list, n_in: int, n_out: int) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        initializer=initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _one_line_error(excinfo: pytest.ExceptionInfo[PrunemipError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# ------------------------------------------------------------------ torch → Network
def test_state_dict_file_matches_torch(tmp_path: Path) -> None:
    model = _mlp()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    network = load_network(tmp_path / "model.pt")
    assert [layer.activation for layer in network.layers] == ["relu", "relu", "identity"]
    assert network.widths == [6, 8, 5, 3]
    assert network.input_spec.shape == (6,) and not network.input_spec.is_bounded
    assert all(layer.weight.dtype == np.float64 for layer in network.layers)
    _assert_matches(network, model, _inputs((6,)))


def _stored_pattern(matrix: sp.csr_matrix) -> np.ndarray:
    """Which entries the CSR stores (explicit zeros included)."""
    pattern = np.zeros(matrix.shape, dtype=bool)
    pattern[np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr)), matrix.indices] = True
    return pattern


def test_pruned_state_dict_uses_mask_not_stale_weight(tmp_path: Path) -> None:
    model = _mlp()
    for module in (model[0], model[2]):
        prune.l1_unstructured(module, "weight", amount=0.6)
    with torch.no_grad():
        # Move every weight underneath the mask (as momentum does): `.weight` is now stale.
        model[0].weight_orig.add_(1.0)
        row, col = model[0].weight_mask.nonzero()[0].tolist()
        model[0].weight_orig[row, col] = 0.0  # a kept weight that is exactly zero
    assert not torch.equal(model[0].weight, model[0].weight_orig * model[0].weight_mask)
    from_module = network_from_module(model)  # before any forward refreshes `.weight`
    torch.save(model.state_dict(), tmp_path / "pruned.pt")
    assert "0.weight_orig" in model.state_dict() and "0.weight" not in model.state_dict()

    network = load_network(tmp_path / "pruned.pt")
    for net in (network, from_module):
        for layer, module in zip(net.layers[:2], (model[0], model[2]), strict=True):
            np.testing.assert_array_equal(_stored_pattern(layer.weight), module.weight_mask.bool().numpy())
        assert net.layers[0].weight[row, col] == 0.0
        assert net.layers[0].weight.nnz == net.layers[0].nnz + 1
        _assert_matches(net, model, _inputs((6,)))  # model(x) computes weight_orig * weight_mask


def test_pruned_bias_is_masked() -> None:
    model = _mlp((4, 3, 2))
    prune.l1_unstructured(model[0], "bias", amount=2)
    with torch.no_grad():
        model[0].bias_orig.add_(5.0)
    network = network_from_state_dict(model.state_dict())
    expected = (model[0].bias_orig * model[0].bias_mask).detach().double().numpy()
    np.testing.assert_array_equal(network.layers[0].bias, expected)
    _assert_matches(network, model, _inputs((4,)))


class _Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = _mlp((5, 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.mark.parametrize(
    "make_state_dict",
    [
        lambda m: m.state_dict(),
        lambda m: OrderedDict(
            (k.replace("0.", "fc1.").replace("2.", "fc2."), v) for k, v in m.state_dict().items()
        ),
        lambda m: OrderedDict((f"module.layers.{k}", v) for k, v in m.state_dict().items()),
        lambda m: {"state_dict": m.state_dict(), "epoch": 3},
        lambda m: {"model_state_dict": m.state_dict(), "optimizer": {"lr": 0.1}},
        lambda m: {"model": m.state_dict()},
    ],
    ids=["plain", "named", "nested-prefix", "checkpoint", "model_state_dict", "model"],
)
def test_state_dict_layouts(tmp_path: Path, make_state_dict: Callable) -> None:
    model = _Wrapped().eval()
    torch.save(make_state_dict(model.layers), tmp_path / "ckpt.pth")
    _assert_matches(load_network(tmp_path / "ckpt.pth"), model, _inputs((5,)))


def test_bias_false_layers(tmp_path: Path) -> None:
    model = _mlp(bias=False)
    torch.save(model.state_dict(), tmp_path / "nobias.pt")
    for network in (load_network(tmp_path / "nobias.pt"), network_from_module(model)):
        assert all(not layer.bias.any() for layer in network.layers)
        _assert_matches(network, model, _inputs((6,)))


def test_leading_flatten_nested_and_noop_modules() -> None:
    model = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(12, 7), nn.ReLU(), nn.Dropout(0.5)),
        nn.Identity(),
        nn.Linear(7, 4),
    ).eval()
    network = network_from_module(model, InputSpec.create((3, 2, 2), 0.0, 1.0))
    assert network.input_spec.shape == (3, 2, 2) and network.input_spec.is_bounded
    assert [layer.activation for layer in network.layers] == ["relu", "identity"]
    _assert_matches(network, model, _inputs((3, 2, 2)))


def test_consecutive_linears_keep_identity_through_torch_round_trip(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    network = network_from_module(model)
    assert [layer.activation for layer in network.layers] == ["identity", "relu", "identity"]
    _assert_matches(network, model, _inputs((4,)))
    save_torch_checkpoint(network, tmp_path / "ckpt.pt")
    reloaded = load_network(tmp_path / "ckpt.pt")
    assert [layer.activation for layer in reloaded.layers] == ["identity", "relu", "identity"]
    _assert_matches(reloaded, model, _inputs((4,)))


def test_network_to_module_reproduces_logits() -> None:
    model = _mlp()
    network = network_from_module(model)
    x = _inputs((6,))
    _assert_matches(network, network_to_module(network), x)
    module64 = network_to_module(network, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(module64(x.double()).numpy(), network.forward(x.numpy()), atol=1e-12)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_file(tmp_path: Path, how: str) -> None:
    model = nn.Sequential(nn.Flatten(), *_mlp((6, 8, 3))).eval()
    example = _inputs((2, 3), batch=1)
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, example)
    scripted.save(str(tmp_path / "model.pt"))
    network = load_network(tmp_path / "model.pt", input_spec=InputSpec.create((2, 3)))
    assert network.widths == [6, 8, 3]
    _assert_matches(network, model, _inputs((2, 3)))


def test_traced_pruned_module(tmp_path: Path) -> None:
    model = _mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    torch.jit.trace(model, _inputs((6,), batch=1)).save(str(tmp_path / "traced.pt"))
    network = load_network(tmp_path / "traced.pt")
    assert network.layers[0].weight.nnz == int(model[0].weight_mask.sum())
    _assert_matches(network, model, _inputs((6,)))


# ------------------------------------------------------------------ pickled modules
def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    model = _mlp()
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(PrunemipError) as excinfo:
        load_network(tmp_path / "whole.pt")
    message = _one_line_error(excinfo)
    assert "--trust-pickle" in message and "whole.pt" in message
    _assert_matches(load_network(tmp_path / "whole.pt", trust_pickle=True), model, _inputs((6,)))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_raw_pickle_needs_trust(tmp_path: Path) -> None:
    with (tmp_path / "raw.pt").open("wb") as handle:
        pickle.dump(_mlp().state_dict(), handle)
    with pytest.raises(PrunemipError, match="--trust-pickle"):
        load_network(tmp_path / "raw.pt")


# ------------------------------------------------------------------ ONNX
def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    model = _mlp()
    path = _export_onnx(model, _inputs((6,), batch=1), tmp_path / "model.onnx")
    network = load_network(path)
    assert network.widths == [6, 8, 5, 3] and network.input_spec.normalization is None
    _assert_matches(network, model, _inputs((6,)))


class _Normalised(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([[0.5], [-0.25]]))
        self.register_buffer("std", torch.tensor([[2.0], [0.5]]))
        self.mlp = nn.Sequential(nn.Flatten(), *_mlp((6, 5, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.mean) / self.std)


def test_onnx_normalisation_is_folded(tmp_path: Path) -> None:
    model = _Normalised().eval()
    path = _export_onnx(model, _inputs((2, 3), batch=1), tmp_path / "norm.onnx")
    network = load_network(path)
    assert network.input_spec.shape == (2, 3)
    assert network.input_spec.normalization == {
        "mean": [0.5, 0.5, 0.5, -0.25, -0.25, -0.25],
        "std": [2.0, 2.0, 2.0, 0.5, 0.5, 0.5],
    }
    _assert_matches(network, model, _inputs((2, 3)))


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
    network = load_onnx(_save_graph(tmp_path / "gemm.onnx", nodes, inits, 4, 2))
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
    network = load_onnx(_save_graph(tmp_path / "mm.onnx", nodes, inits, 3, 2))
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


# ------------------------------------------------------------------ prunemip's own format
def _sample_network() -> Network:
    rng = np.random.default_rng(3)
    dense = rng.normal(size=(4, 5))
    dense[dense < 0] = 0.0
    rows, cols = np.nonzero(dense > 0)
    data = dense[rows, cols]
    data[0] = 0.0  # an explicitly stored zero: a kept weight that happens to be 0
    data[1] = -0.0
    first = sp.csr_matrix((data, (rows, cols)), shape=(4, 5))
    second = sp.csr_matrix(rng.normal(size=(3, 4)) * (rng.random((3, 4)) < 0.5))
    spec = InputSpec.create(
        (5,),
        lower=np.linspace(-1, 0, 5),
        upper=1.0,
        normalization={"mean": 0.1, "std": [1.0, 2.0, 3.0, 4.0, 5.0]},
        dataset="toy",
    )
    return Network.from_arrays(
        [first, second],
        [rng.normal(size=4), rng.normal(size=3)],
        spec,
        metadata={
            "method": "snip",
            "sparsity": 0.5,
            "seed": np.int64(7),
            "history": [1, 2.5, None],
        },
    )


def test_native_round_trip_is_exact(tmp_path: Path) -> None:
    network = _sample_network()
    assert network.layers[0].weight.nnz == network.layers[0].nnz + 2
    path = save_network(network, tmp_path / "net.npz")
    loaded = load_network(path)
    for original, copy in zip(network.layers, loaded.layers, strict=True):
        np.testing.assert_array_equal(copy.weight.indptr, original.weight.indptr)
        np.testing.assert_array_equal(copy.weight.indices, original.weight.indices)
        assert copy.weight.shape == original.weight.shape
        assert copy.weight.data.tobytes() == original.weight.data.tobytes()
        assert copy.bias.tobytes() == original.bias.tobytes()
        assert copy.activation == original.activation
    assert loaded.input_spec.to_dict() == network.input_spec.to_dict()
    assert loaded.metadata == {
        "method": "snip",
        "sparsity": 0.5,
        "seed": 7,
        "history": [1, 2.5, None],
    }
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["header"]))["format"] == "prunemip-network"


def test_folded_normalisation_keeps_mask_through_save(tmp_path: Path) -> None:
    network = _sample_network()
    folded = network.fold_input_normalization(0.5, [1.0, 2.0, 4.0, 8.0, 0.5])
    loaded = load_network(save_network(folded, tmp_path / "folded.npz"))
    for original, copy in zip(network.layers, loaded.layers, strict=True):
        pattern = _stored_pattern(original.weight)
        np.testing.assert_array_equal(_stored_pattern(copy.weight), pattern)
    x = np.linspace(0, 1, 5)
    np.testing.assert_allclose(
        loaded.forward(x), network.forward((x - 0.5) / [1.0, 2.0, 4.0, 8.0, 0.5]), atol=1e-12
    )


def test_native_format_detected_without_suffix(tmp_path: Path) -> None:
    network = _sample_network()
    save_network(network, tmp_path / "net.model")
    assert (tmp_path / "net.model").exists() and not (tmp_path / "net.model.npz").exists()
    reloaded = load_network(tmp_path / "net.model")
    np.testing.assert_array_equal(reloaded.forward(np.ones(5)), network.forward(np.ones(5)))


def test_native_input_spec_override(tmp_path: Path) -> None:
    save_network(_sample_network(), tmp_path / "net.npz")
    spec = InputSpec.create(5, 0.0, 1.0)
    assert load_network(tmp_path / "net.npz", input_spec=spec).input_spec is spec


@pytest.mark.parametrize("existing", [False, True])
def test_failed_save_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    path = tmp_path / "net.npz"
    if existing:
        save_network(_sample_network(), path)
    before = path.read_bytes() if existing else None

    def broken(file: object, **arrays: object) -> None:
        file.write(b"partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_network(_sample_network(), path)
    assert [p.name for p in tmp_path.iterdir()] == (["net.npz"] if existing else [])
    assert (path.read_bytes() if existing else None) == before


def test_torch_checkpoint_is_weights_only_loadable(tmp_path: Path) -> None:
    network = _sample_network().with_input_spec(
        InputSpec.create(5, 0.0, 1.0, normalization={"mean": 0.5, "std": 0.25}, dataset="toy")
    )
    save_torch_checkpoint(network, tmp_path / "ckpt.pt")
    checkpoint = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    module = network_to_module(network)
    module.load_state_dict(checkpoint["state_dict"])
    assert all(t.dtype == torch.float32 for t in checkpoint["state_dict"].values())
    loaded = load_network(tmp_path / "ckpt.pt")
    assert loaded.input_spec.to_dict() == network.input_spec.to_dict()
    assert loaded.metadata == {
        "method": "snip",
        "sparsity": 0.5,
        "seed": 7,
        "history": [1, 2.5, None],
    }
    _assert_matches(loaded, module, _inputs((5,)))
    override = InputSpec.create(5, -1.0, 1.0)
    assert load_network(tmp_path / "ckpt.pt", input_spec=override).input_spec is override


def test_importing_model_io_does_not_import_torch() -> None:
    code = "import sys, prunemip.model_io; assert 'torch' not in sys.modules and 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ errors
def _write(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_bytes(content)
        return tmp_path / name

    return make


def _torch_file(obj: object, name: str = "m.pt") -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        torch.save(obj, tmp_path / name)
        return tmp_path / name

    return make


def _truncated(tmp_path: Path) -> Path:
    torch.save(_mlp().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.pt"


def _foreign_npz(tmp_path: Path) -> Path:
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3))
    return tmp_path / "foreign.npz"


def _onnx_file(nodes: list[onnx.NodeProto], weight: np.ndarray) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        init = [numpy_helper.from_array(weight, "w")]
        return _save_graph(tmp_path / "bad.onnx", nodes, init, 3, 2)

    return make


_W = np.ones((2, 3), dtype=np.float32)
_GEMM = helper.make_node("Gemm", ["h", "w"], ["y"], name="gemm", transB=1)


def _nan_state_dict() -> dict[str, torch.Tensor]:
    state = _mlp().state_dict()
    state["2.weight"][1, 1] = math.nan
    return state


def _mismatched_state_dict() -> OrderedDict[str, torch.Tensor]:
    state = _mlp().state_dict()
    state["2.weight"] = torch.zeros(5, 7)
    return state


_ERROR_CASES: dict[str, tuple[Callable[[Path], Path], dict, str]] = {
    "missing": (lambda tmp_path: tmp_path / "nope.pt", {}, "no such file"),
    "conv2d": (
        _torch_file(nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Conv2d(1, 1, 1))),
        {"trust_pickle": True},
        "layer 2 (Conv2d) is not supported; prunemip reads Linear, ReLU, Flatten",
    ),
    "sigmoid": (
        _torch_file(nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())),
        {"trust_pickle": True},
        "layer 1 (Sigmoid) is not supported",
    ),
    "onnx-sigmoid": (
        _onnx_file([helper.make_node("Sigmoid", ["x"], ["h"], name="act0"), _GEMM], _W),
        {},
        "ONNX node 'act0' has op type Sigmoid, which prunemip does not support (supported: Gemm",
    ),
    "onnx-transA": (
        _onnx_file([helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transA=1)], _W.T.copy()),
        {},
        "ONNX node 'g': the activation has shape (1, 3), not a column (n, 1)",
    ),
    "onnx-nan": (
        _onnx_file([helper.make_node("Identity", ["x"], ["h"]), _GEMM], np.full_like(_W, np.nan)),
        {},
        "layer 0: weights contain NaN or Inf",
    ),
    "onnx-relu-first": (
        _onnx_file([helper.make_node("Relu", ["x"], ["h"], name="r"), _GEMM], _W),
        {},
        "ONNX node 'r' (Relu) comes before any affine layer",
    ),
    "nan-state-dict": (_torch_file(_nan_state_dict()), {}, "layer 1: weights contain NaN or Inf"),
    "conv-state-dict": (
        _torch_file({"conv.weight": torch.zeros(4, 1, 3, 3), "conv.bias": torch.zeros(4)}),
        {},
        "looks like a convolution",
    ),
    "batchnorm-state-dict": (
        _torch_file(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).state_dict()),
        {},
        "'1.running_mean' is not a Linear weight or bias",
    ),
    "inconsistent-shapes": (
        _torch_file(_mismatched_state_dict()),
        {},
        "state_dict layer '2' takes 7 inputs but the previous layer '0' has 8 outputs",
    ),
    "not-a-checkpoint": (_torch_file({"epoch": 3, "notes": "hi"}), {}, "holds no state_dict"),
    "garbage-pt": (
        _write("junk.pt", b"definitely not a model" * 4),
        {},
        "not a readable PyTorch file",
    ),
    "truncated-pt": (_truncated, {}, "not a readable PyTorch file"),
    "garbage-onnx": (_write("junk.onnx", b"\x00\xff" * 40), {}, "not a readable ONNX model"),
    "garbage-npz": (_write("junk.npz", b"PK\x03\x04 broken"), {}, "corrupt prunemip network file"),
    "foreign-npz": (_foreign_npz, {}, "not a prunemip network file"),
}


@pytest.mark.parametrize("case", list(_ERROR_CASES))
def test_load_errors_are_one_line(tmp_path: Path, case: str) -> None:
    make, kwargs, expected = _ERROR_CASES[case]
    path = make(tmp_path)
    with pytest.raises(PrunemipError) as excinfo:
        load_network(path, **kwargs)
    assert expected in _one_line_error(excinfo)
