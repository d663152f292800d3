"""Model loading and saving through ``model_io``: prunemip's own format, the weights-only torch
checkpoint, and one-line load errors for every format; torch and ONNX conversion have modules of their own."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
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

from prunemip import InputSpec, Network, PrunemipError
from prunemip.model_io import load_network, save_network, save_torch_checkpoint
from prunemip.torch_io import network_to_module


# ------------------------------------------------------------------ helpers
def mlp(sizes: tuple[int, ...] = (6, 8, 5, 3), *, bias: bool = True, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        modules.append(nn.Linear(n_in, n_out, bias=bias))
        if index < len(sizes) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def inputs(shape: tuple[int, ...], seed: int = 1, batch: int = 16) -> torch.Tensor:
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed))


def assert_matches(network: Network, module: nn.Module, x: torch.Tensor) -> None:
    """Float64 network logits equal the torch module's float32 logits."""
    with torch.no_grad():
        expected = module(x).double().numpy()
    got = network.forward(x.double().numpy())
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def save_graph(path: Path, nodes: list, initializers: list, n_in: int, n_out: int) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        initializer=initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def one_line_error(excinfo: pytest.ExceptionInfo[PrunemipError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def stored_pattern(matrix: sp.csr_matrix) -> np.ndarray:
    """Which entries the CSR stores (explicit zeros included)."""
    pattern = np.zeros(matrix.shape, dtype=bool)
    pattern[np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr)), matrix.indices] = True
    return pattern


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
        pattern = stored_pattern(original.weight)
        np.testing.assert_array_equal(stored_pattern(copy.weight), pattern)
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
    assert_matches(loaded, module, inputs((5,)))
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
    torch.save(mlp().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.pt"


def _foreign_npz(tmp_path: Path) -> Path:
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3))
    return tmp_path / "foreign.npz"


def _onnx_file(nodes: list[onnx.NodeProto], weight: np.ndarray) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        init = [numpy_helper.from_array(weight, "w")]
        return save_graph(tmp_path / "bad.onnx", nodes, init, 3, 2)

    return make


_W = np.ones((2, 3), dtype=np.float32)
_GEMM = helper.make_node("Gemm", ["h", "w"], ["y"], name="gemm", transB=1)


def _nan_state_dict() -> dict[str, torch.Tensor]:
    state = mlp().state_dict()
    state["2.weight"][1, 1] = math.nan
    return state


def _mismatched_state_dict() -> OrderedDict[str, torch.Tensor]:
    state = mlp().state_dict()
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
    assert expected in one_line_error(excinfo)
