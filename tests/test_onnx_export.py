"""ONNX export: prunemip reads back the same network and input spec, ONNX's reference evaluator
reproduces the logits (float64 to 1e-12; float32 within its rounding), onnx's checker and OMLT's
ONNX reader accept the file, and every bad output is one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from prunemip import InputSpec, Network, PrunemipError
from prunemip.model_io import load_network, save_model
from prunemip.onnx_export import FLOAT32_UNIT_ROUNDOFF, float32_rounding, network_to_onnx, save_onnx
from prunemip.onnx_io import INPUT_SPEC_KEY, ROUNDED_KEY
from tests.cli.test_cli import assert_user_error, run
from tests.conftest import assert_one_line, random_network


@pytest.fixture
def network() -> Network:
    """A pruned 6-9-7-4 network on 2×3 images: a per-input range, a folded normalisation, metadata."""
    base = random_network(np.random.default_rng(3), [6, 9, 7, 4], 0.6, weight_scale=1.5)
    spec = InputSpec.create(
        (2, 3),
        np.linspace(-1.0, 0.0, 6),
        np.linspace(1.0, 2.0, 6),
        normalization={"mean": 0.5, "std": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]},
        dataset="toy",
    )
    return replace(base, input_spec=spec, metadata={"method": "magnitude", "sparsity": np.float64(0.6)})


def points(network: Network, count: int = 32) -> np.ndarray:
    spec = network.input_spec
    return np.random.default_rng(7).uniform(spec.lower, spec.upper, size=(count, network.n_inputs))


def reference_logits(path: Path, x: np.ndarray) -> np.ndarray:
    return ReferenceEvaluator(str(path)).run(None, {"input": x})[0]


def test_round_trip_keeps_weights_biases_spec_and_metadata(network: Network, tmp_path: Path) -> None:
    back = load_network(save_model(network, tmp_path / "net.onnx"))
    assert back.architecture == network.architecture and back.nnz == network.nnz
    for mine, theirs in zip(network.layers, back.layers, strict=True):
        assert np.array_equal(mine.weight.toarray(), theirs.weight.toarray())
        assert np.array_equal(mine.bias, theirs.bias)
        assert mine.activation == theirs.activation
    assert back.input_spec.to_dict() == network.input_spec.to_dict()
    assert back.metadata == {"method": "magnitude", "sparsity": 0.6}


def test_round_trip_of_unusual_activations(tmp_path: Path) -> None:
    """An identity hidden layer and a ReLU output layer survive (Gemm, Gemm, Gemm + Relu)."""
    network = random_network(np.random.default_rng(4), [3, 5, 4, 2], activations=["relu", "identity", "relu"])
    back = load_network(save_onnx(network, tmp_path / "odd.onnx"))
    assert [layer.activation for layer in back.layers] == ["relu", "identity", "relu"]
    x = points(network)
    np.testing.assert_array_equal(back.forward(x), network.forward(x))


def test_reference_evaluator_reproduces_the_float64_logits(network: Network, tmp_path: Path) -> None:
    path = save_onnx(network, tmp_path / "net.onnx")
    x = points(network)
    np.testing.assert_allclose(reference_logits(path, x), network.forward(x), rtol=0, atol=1e-12)


def test_float32_rounds_each_weight_and_is_marked(network: Network, tmp_path: Path) -> None:
    """The float32 file holds fl₃₂(W) and fl₃₂(b) exactly (each within 2⁻²⁴ relative), says so in its
    metadata, and a float32 evaluation stays within a first-order bound of the float64 logits."""
    path = save_onnx(network, tmp_path / "net32.onnx", "float32")
    back = load_network(path)
    assert back.metadata[ROUNDED_KEY] == "float32"
    for mine, theirs in zip(network.layers, back.layers, strict=True):
        dense = mine.weight.toarray()
        assert np.array_equal(theirs.weight.toarray(), dense.astype(np.float32).astype(np.float64))
        assert np.all(np.abs(theirs.weight.toarray() - dense) <= FLOAT32_UNIT_ROUNDOFF * np.abs(dense))
    change = float32_rounding(network)
    assert (
        0 < change <= FLOAT32_UNIT_ROUNDOFF * max(np.abs(layer.weight.data).max() for layer in network.layers)
    )
    x = points(network)
    exact = network.forward(x)
    error = np.abs(reference_logits(path, x.astype(np.float32)) - exact).max()
    # |Δz| ≲ (n + 2)·u₃₂·|W||h| + |b|·u₃₂ per layer, compounded: 1e-5 relative is ample for this net
    assert 0 < error <= 1e-5 * max(1.0, np.abs(exact).max()), error


def test_onnx_checker_accepts_it(network: Network) -> None:
    for precision in ("float64", "float32"):
        onnx.checker.check_model(network_to_onnx(network, precision), full_check=True)


def test_omlt_reads_it_and_solves_the_same_mip(tmp_path: Path) -> None:
    """OMLT's ONNX reader with the input bounds, and OMLT's big-M formulation over it: the same
    optimum as over prunemip's own OMLT definition of the network."""
    pytest.importorskip("pyomo.environ")
    omlt_io = pytest.importorskip("omlt.io")
    from omlt.neuralnet import ReluBigMFormulation

    from prunemip.embed.omlt import to_omlt_network_definition
    from tests.embed.test_omlt import margin_optimum

    network = random_network(np.random.default_rng(5), [5, 9, 7, 3], 0.4, weight_scale=1.5)
    path = save_onnx(network, tmp_path / "net.onnx")
    bounds = dict.fromkeys(range(network.n_inputs), (0.0, 1.0))
    definition = omlt_io.load_onnx_neural_network(onnx.load(str(path)), input_bounds=bounds)
    layers = list(definition.layers)[1:]
    assert [layer.activation for layer in layers] == ["relu", "relu", "linear"]
    for mine, theirs in zip(network.layers, layers, strict=True):
        assert np.array_equal(theirs.weights, mine.weight.toarray().T)
        assert np.array_equal(theirs.biases, mine.bias)
    theirs, _ = margin_optimum(ReluBigMFormulation(definition), 2, 0)
    ours, _ = margin_optimum(ReluBigMFormulation(to_omlt_network_definition(network)), 2, 0)
    assert theirs == pytest.approx(ours, abs=1e-6)


def test_bad_output_and_metadata_are_one_line(network: Network, tmp_path: Path) -> None:
    with pytest.raises(PrunemipError) as error:
        save_model(network, tmp_path / "net.txt")
    assert_one_line(error, "'net.txt'", ".npz or .onnx or .pt")
    with pytest.raises(PrunemipError) as error:
        save_onnx(network, tmp_path / "missing" / "net.onnx")
    assert_one_line(error, "does not exist")
    with pytest.raises(PrunemipError) as error:
        save_onnx(network, tmp_path / "net.onnx", "float16")
    assert_one_line(error, "float16", "float64, float32")
    with pytest.raises(PrunemipError) as error:
        save_model(network, tmp_path / "net.npz", onnx_precision="float32")
    assert_one_line(error, ".onnx files only")
    with pytest.raises(PrunemipError) as error:
        save_onnx(replace(network, metadata={"bad": object()}), tmp_path / "net.onnx")
    assert_one_line(error, "metadata")
    assert sorted(tmp_path.iterdir()) == []

    model = network_to_onnx(network)
    for value, fragment in (("{", "unreadable prunemip metadata"), ('{"shape": [5]}', "5 entries")):
        onnx.helper.set_model_props(model, {INPUT_SPEC_KEY: value})
        onnx.save(model, str(tmp_path / "bad.onnx"))
        with pytest.raises(PrunemipError) as error:
            load_network(tmp_path / "bad.onnx")
        assert_one_line(error, "bad.onnx", fragment)


def test_export_command(network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save_model(network, tmp_path / "net.npz")
    (tmp_path / "folder.onnx").mkdir()
    target = tmp_path / "net32.onnx"
    code, out, _ = run(["export", str(source), "-o", str(target), "--float32"], capsys)
    assert code == 0 and "warning: weights rounded to float32" in out and "different function" in out
    code, out, _ = run(["info", str(target)], capsys)
    assert code == 0 and "range [-1, 2]" in out and "weights rounded to float32" in out
    unbounded = save_model(network.with_input_spec(InputSpec.create(6)), tmp_path / "free.npz")
    code, out, _ = run(["export", str(unbounded), "-o", str(tmp_path / "free.onnx")], capsys)
    assert code == 0 and "--input-range" in out
    code, out, _ = run(["export", str(unbounded), "-o", str(target), "--input-range", "0", "1"], capsys)
    assert code == 0 and load_network(target).input_spec.is_bounded
    for argv, fragment in (
        (["-o", str(tmp_path / "net.txt")], "-o must name a .npz or .onnx or .pt file"),
        (["-o", str(tmp_path / "no" / "net.onnx")], "does not exist"),
        (["-o", str(tmp_path / "folder.onnx")], "is a folder"),
        (["-o", ""], "-o needs a file name"),
        (["-o", str(tmp_path / "x.npz"), "--float32"], "--float32 applies to .onnx"),
        (["-o", str(tmp_path / "x.onnx"), "--input-range", "1", "0"], "--input-range"),
    ):
        code, _, err = run(["export", str(source), *argv], capsys)
        assert_user_error(code, err, fragment)
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.npz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_train_writes_onnx_that_encode_reads_without_an_input_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.onnx"
    train = ["train", "--arch", "8", "--epochs", "1", "--quiet", "--runs-dir", str(tmp_path / "runs")]
    code, out, _ = run([*train, "-o", str(model)], capsys)
    assert code == 0, out
    network = load_network(model)
    assert network.input_spec.shape == (8, 8) and network.input_spec.is_bounded
    assert network.metadata["dataset"] == "digits"
    point = tmp_path / "x.npy"
    np.save(point, np.full(64, 0.5))
    code, out, _ = run(["encode", str(model), "--input", str(point), "-o", str(tmp_path / "m.lp")], capsys)
    assert code == 0, out
    assert json.loads(onnx.load(str(model)).metadata_props[0].value)["upper"] == 1.0
