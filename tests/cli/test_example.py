"""``prunemip example``: the files it writes agree with each other (tested on a random network, no
training; tests/test_readme_commands.py runs the command itself), and a bad folder is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prunemip import InputSpec
from prunemip.cli.example import write_files
from prunemip.model_io import load_network
from prunemip.study.config import load_config
from prunemip.vnnlib import load_vnnlib, parse_vnnlib, robustness_vnnlib
from tests.cli.test_cli import assert_user_error, run
from tests.conftest import random_network


def test_the_files_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    spec = InputSpec.create((8, 8), 0.0, 1.0, dataset="digits")
    dense = random_network(rng, [64, 12, 10]).with_input_spec(spec)
    model = random_network(rng, [64, 12, 10], 0.8).with_input_spec(spec)
    x = rng.uniform(size=(8, 8))
    label = int(model.predict(x.reshape(-1)))
    written = write_files(tmp_path, dense, model, x, label, 0.05)
    assert sorted(written) == sorted(p.name for p in tmp_path.iterdir())
    onnx_model = load_network(tmp_path / "model.onnx")
    np.testing.assert_array_equal(onnx_model.forward(x.reshape(-1)), model.forward(x.reshape(-1)))
    assert onnx_model.input_spec.shape == (8, 8) and onnx_model.input_spec.is_bounded
    assert load_network(tmp_path / "model.npz").nnz == model.nnz
    assert load_network(tmp_path / "model.pt").architecture == model.architecture
    assert load_network(tmp_path / "dense.pt").nnz == dense.nnz
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), x)
    assert int((tmp_path / "label.txt").read_text()) == label
    prop = load_vnnlib(tmp_path / "prop.vnnlib")
    assert len(prop.disjuncts) == 9
    for disjunct in prop.disjuncts:
        np.testing.assert_array_equal(disjunct.lower, np.maximum(0.0, x.reshape(-1) - 0.05))
        np.testing.assert_array_equal(disjunct.upper, np.minimum(1.0, x.reshape(-1) + 0.05))
    assert not prop.satisfied_by(x.reshape(-1), model.forward(x.reshape(-1)))
    assert (tmp_path / "instances.csv").read_text() == "model.onnx,prop.vnnlib,60\n"
    assert load_config(tmp_path / "study.toml").name == "example"


def test_robustness_property_comment_and_counterexamples() -> None:
    x0 = np.array([0.0, 0.5, 1.0])
    text = robustness_vnnlib(x0, 1, 0.25, 3, comment="first\nsecond")
    assert text.startswith("; first\n; second\n(declare-const X_0 Real)")
    prop = parse_vnnlib(text, "test.vnnlib")
    assert len(prop.disjuncts) == 2  # Y_0 >= Y_1 or Y_2 >= Y_1, as c·y <= 0
    first = prop.disjuncts[0]
    np.testing.assert_array_equal(first.lower, [0.0, 0.25, 0.75])
    np.testing.assert_array_equal(first.upper, [0.25, 0.75, 1.0])
    assert prop.satisfied_by(x0, np.array([2.0, 1.0, 0.0]))  # Y_0 >= Y_1
    assert prop.satisfied_by(x0, np.array([0.0, 1.0, 1.0]))  # Y_2 >= Y_1 (not strict)
    assert not prop.satisfied_by(x0, np.array([0.0, 1.0, 0.5]))
    coefficients = [c.coefficients.tolist() for d in prop.disjuncts for c in d.constraints]
    assert coefficients == [[-1, 1, 0], [0, 1, -1]]


def test_a_file_for_the_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    code, _, err = run(["example", str(taken)], capsys)
    assert_user_error(code, err, "is a file")
    with pytest.raises(SystemExit) as stop:
        run(["example", str(tmp_path / "new"), "--eps", "-1"], capsys)
    assert_user_error(stop.value.code, capsys.readouterr().err, "--eps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
