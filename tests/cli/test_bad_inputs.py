"""Every bad input is one line: a corpus of broken files run through every command that reads it.

Commands: info, export, encode, attack, verify (one property and ``--instances``), train and
prune (a model, a ``--data-dir``), experiment validate and run (a study config).

Each case must print exactly one ``prunemip: error:`` line on stderr, exit with ``USER_ERROR``,
raise nothing (no traceback) and leave none of the command's output files behind. The cases
run in-process through ``prunemip.cli.main``; only a path that is not valid UTF-8 needs a real
process (its bytes reach ``main`` as surrogate escapes).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prunemip.cli import main
from prunemip.model_io import save_network
from prunemip.network import InputSpec
from prunemip.torch_io import network_from_module
from tests.cli.test_cli import assert_user_error

#: The file kinds prunemip reads, by suffix.
SUFFIXES = (".pt", ".onnx", ".npz", ".npy", ".vnnlib", ".csv", ".toml")
#: Bytes that are no file format and not UTF-8 (0xff never occurs in UTF-8).
GARBAGE = bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8)) + b"\xff\xfe\x00"
#: A name outside ASCII for the same kinds of bad file.
UNICODE = "données-ü-数据"
N_INPUTS, N_OUTPUTS = 4, 3


def _vnnlib(n_inputs: int, n_outputs: int) -> str:
    """A box over ``n_inputs`` inputs asking for ``Y_1 >= Y_0``."""
    lines = [f"(declare-const X_{i} Real)" for i in range(n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    lines += [f"(assert (>= X_{i} 0.0))\n(assert (<= X_{i} 1.0))" for i in range(n_inputs)]
    return "\n".join([*lines, "(assert (>= Y_1 Y_0))", ""])


def _npy_with_header(path: Path, shape: tuple[int, ...]) -> None:
    """A ``.npy`` whose header promises ``shape`` float64 values, with none of them in the file."""
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": shape})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good files (``model.*``, ``x.npy``, ``prop.vnnlib``) and bad files of every kind."""
    root = tmp_path_factory.mktemp("corpus")
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(N_INPUTS, 5), nn.ReLU(), nn.Linear(5, N_OUTPUTS))
    torch.save(module.state_dict(), root / "model.pt")
    torch.save(module, root / "pickled.pt")
    torch.onnx.export(module, (torch.zeros(1, N_INPUTS),), str(root / "model.onnx"), dynamo=False)
    save_network(network_from_module(module, InputSpec.create(N_INPUTS, 0.0, 1.0)), root / "model.npz")
    np.save(root / "x.npy", np.full(N_INPUTS, 0.5))
    (root / "prop.vnnlib").write_text(_vnnlib(N_INPUTS, N_OUTPUTS))
    for folder in (root, root / UNICODE):
        folder.mkdir(exist_ok=True)
        for suffix in SUFFIXES:
            (folder / f"empty{suffix}").write_bytes(b"")
            (folder / f"garbage{suffix}").write_bytes(GARBAGE)
            (folder / f"dir{suffix}").mkdir()
    # arrays no point can be made of
    np.save(root / "zero-length.npy", np.zeros(0))
    np.save(root / "zero-d.npy", np.float64(0.5))
    np.save(root / "object.npy", np.array([1.0, "a", None, 2.0], dtype=object), allow_pickle=True)
    np.save(root / "text.npy", np.array(["0.5"] * N_INPUTS))
    np.save(root / "complex.npy", np.full(N_INPUTS, 0.5 + 1j))
    np.save(root / "wrong-size.npy", np.zeros(N_INPUTS + 1))
    _npy_with_header(root / "huge.npy", (10**12,))
    _npy_with_header(root / "truncated.npy", (N_INPUTS,))
    (root / "x.csv").write_text("0.5,0.5,0.5,0.5\n")
    np.savez(root / "x.npz", x=np.full(N_INPUTS, 0.5))
    # properties
    (root / "latin1.vnnlib").write_bytes(("; café\n" + _vnnlib(N_INPUTS, N_OUTPUTS)).encode("latin-1"))
    (root / "wrong-size.vnnlib").write_text(_vnnlib(N_INPUTS + 2, N_OUTPUTS))
    # study configs
    (root / "latin1.toml").write_bytes('name = "café"\n'.encode("latin-1"))
    # instances lists
    (root / "latin1.csv").write_bytes("model.onnx,prop.vnnlib,10 ; é\n".encode("latin-1"))
    (root / "fields.csv").write_text("model.onnx,prop.vnnlib\n")
    (root / "timeout.csv").write_text("model.onnx,prop.vnnlib,soon\n")
    # dataset folders
    (root / "idx-garbage").mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (root / "idx-garbage" / stem).write_bytes(GARBAGE)
    (root / "npz-garbage").mkdir()
    (root / "npz-garbage" / "mnist.npz").write_bytes(GARBAGE)
    (root / "no-data").mkdir()
    return root


#: Model files no network can be read from (info, encode, attack, verify, prune).
BAD_MODELS = (
    "missing.pt",
    "pickled.pt",
    "x.npy",
    "prop.vnnlib",
    *(f"{kind}{suffix}" for kind in ("empty", "garbage", "dir") for suffix in (".pt", ".onnx", ".npz")),
    *(f"{UNICODE}/{kind}.pt" for kind in ("empty", "garbage", "dir")),
    "garbage.csv",
)
#: Files no input point can be read from (encode --input, attack --input).
BAD_POINTS = (
    "missing.npy",
    "empty.npy",
    "garbage.npy",
    "dir.npy",
    "zero-length.npy",
    "zero-d.npy",
    "object.npy",
    "text.npy",
    "complex.npy",
    "wrong-size.npy",
    "huge.npy",
    "truncated.npy",
    "x.csv",
    "x.npz",
    "model.pt",
    f"{UNICODE}/garbage.npy",
)
#: Files no property can be read from (verify NETWORK PROPERTY).
BAD_PROPERTIES = (
    "missing.vnnlib",
    "empty.vnnlib",
    "garbage.vnnlib",
    "dir.vnnlib",
    "latin1.vnnlib",
    "wrong-size.vnnlib",
    "x.npy",
    f"{UNICODE}/garbage.vnnlib",
)
#: Instance lists that are bad as a whole (verify --instances).
BAD_INSTANCE_LISTS = (
    "missing.csv",
    "empty.csv",
    "garbage.csv",
    "dir.csv",
    "latin1.csv",
    "fields.csv",
    "timeout.csv",
    f"{UNICODE}/garbage.csv",
)
#: Study configs that are bad (experiment validate, experiment run).
BAD_CONFIGS = (
    "missing.toml",
    "empty.toml",
    "garbage.toml",
    "dir.toml",
    "latin1.toml",
    "model.pt",
    f"{UNICODE}/garbage.toml",
)
#: Words of other tools (numpy's and torch's advice, OS error numbers) a prunemip error must not use.
FOREIGN = ("weights_only", "allow_pickle", "pickle.load", "Errno")
#: A Python keyword argument (``data_dir=``); an error may name one only after "in Python, ".
PYTHON_KEYWORD = re.compile(r"(?<!in Python, )\b[a-z_]+=")
#: Dataset folders no split can be read from (train, prune: --data-dir).
BAD_DATA_DIRS = ("missing", "no-data", "idx-garbage", "npz-garbage", "model.pt", f"{UNICODE}/dir.npz")


def assert_one_line_error(argv: list[str], outputs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``prunemip ARGV`` fails with one ``prunemip: error:`` line and writes none of ``outputs``."""
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert_user_error(code, err)
    assert not any(word in err for word in FOREIGN), err
    assert not PYTHON_KEYWORD.search(err), err
    for path in outputs:
        assert not path.exists(), path


@pytest.mark.parametrize("model", BAD_MODELS)
def test_a_bad_model_file_is_one_line_in_every_command(model, corpus, tmp_path, capsys) -> None:
    path = str(corpus / model)
    mps, json_path, png = tmp_path / "out.mps", tmp_path / "a.json", tmp_path / "a.png"
    cex, pruned, exported = tmp_path / "cex.txt", tmp_path / "pruned.npz", tmp_path / "model.onnx"
    point = ["--input", str(corpus / "x.npy"), "--input-range", "0", "1"]
    assert_one_line_error(["info", path], [], capsys)
    assert_one_line_error(["export", path, "-o", str(exported)], [exported], capsys)
    assert_one_line_error(["encode", path, *point, "-o", str(mps)], [mps], capsys)
    attack = ["attack", path, *point, "--json", str(json_path), "--png", str(png)]
    assert_one_line_error(attack, [json_path, png], capsys)
    verify = ["verify", path, str(corpus / "prop.vnnlib"), "--counterexample", str(cex)]
    assert_one_line_error(verify, [cex], capsys)
    runs = tmp_path / "runs"
    prune = ["prune", path, "--sparsity", "0.5", "--runs-dir", str(runs), "-o", str(pruned)]
    assert_one_line_error(prune, [pruned, runs], capsys)


@pytest.mark.parametrize("point", BAD_POINTS)
def test_a_bad_input_point_is_one_line(point, corpus, tmp_path, capsys) -> None:
    mps, json_path, png = tmp_path / "out.mps", tmp_path / "a.json", tmp_path / "a.png"
    for model in ("model.npz", "model.onnx"):
        flags = ["--input", str(corpus / point), "--input-range", "0", "1"]
        assert_one_line_error(["encode", str(corpus / model), *flags, "-o", str(mps)], [mps], capsys)
        outputs = ["--json", str(json_path), "--png", str(png)]
        assert_one_line_error(["attack", str(corpus / model), *flags, *outputs], [json_path, png], capsys)


@pytest.mark.parametrize("prop", BAD_PROPERTIES)
def test_a_bad_property_is_one_line(prop, corpus, tmp_path, capsys) -> None:
    cex = tmp_path / "cex.txt"
    for model in ("model.onnx", "model.npz"):
        argv = ["verify", str(corpus / model), str(corpus / prop), "--counterexample", str(cex)]
        assert_one_line_error(argv, [cex], capsys)


@pytest.mark.parametrize("listing", BAD_INSTANCE_LISTS)
def test_a_bad_instances_file_is_one_line(listing, corpus, tmp_path, capsys) -> None:
    results = tmp_path / "results.csv"
    argv = ["verify", "--instances", str(corpus / listing), "--results", str(results)]
    assert_one_line_error(argv, [results], capsys)


@pytest.mark.parametrize("config", BAD_CONFIGS)
def test_a_bad_study_config_is_one_line(config, corpus, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert_one_line_error(["experiment", "validate", str(corpus / config)], [], capsys)
    assert_one_line_error(["experiment", "run", str(corpus / config), "--out", str(out)], [out], capsys)


@pytest.mark.parametrize("data_dir", BAD_DATA_DIRS)
def test_a_bad_data_folder_is_one_line(data_dir, corpus, tmp_path, capsys) -> None:
    runs, output = tmp_path / "runs", tmp_path / "out.npz"
    common = ["--dataset", "mnist", "--data-dir", str(corpus / data_dir), "--runs-dir", str(runs)]
    train = ["train", *common, "--epochs", "1", "--quiet", "-o", str(output)]
    assert_one_line_error(train, [output, runs], capsys)
    prune = ["prune", str(corpus / "model.npz"), *common, "--sparsity", "0.5", "--quiet", "-o", str(output)]
    assert_one_line_error(prune, [output, runs], capsys)
    point = ["--dataset", "mnist", "--data-dir", str(corpus / data_dir)]
    mps = tmp_path / "out.mps"
    assert_one_line_error(["encode", str(corpus / "model.npz"), *point, "-o", str(mps)], [mps], capsys)


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as a name")
def test_a_path_that_is_not_utf8_is_one_line(tmp_path) -> None:
    """Bytes that are not UTF-8 reach ``main`` as surrogate escapes; the error line still prints."""
    path = tmp_path / os.fsdecode(b"mod\xe8le.pt")
    path.write_bytes(GARBAGE)
    completed = subprocess.run(
        [sys.executable, "-m", "prunemip", "info", str(path)], capture_output=True, check=False
    )
    assert_user_error(completed.returncode, completed.stderr.decode("utf-8", "backslashreplace"))


def test_a_bad_instance_is_an_error_verdict_and_the_batch_goes_on(corpus, tmp_path, capsys) -> None:
    rows = {
        "model.onnx,prop.vnnlib": "",
        "missing.onnx,prop.vnnlib": "missing.onnx: no such file",
        "model.onnx,wrong-size.vnnlib": "declares 6 inputs",
        "model.onnx,empty.vnnlib": "no X_ variables",
        "garbage.pt,prop.vnnlib": "not a readable PyTorch file",
        "pickled.pt,prop.vnnlib": "--trust-pickle",
        "model.npz,prop.vnnlib": "",
    }
    listing = corpus / "batch.csv"
    listing.write_text("".join(f"{row},30\n" for row in rows))
    results = tmp_path / "results.csv"
    assert main(["verify", "--instances", str(listing), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    with results.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == ["onnx", "vnnlib", "verdict", "seconds", "reason"]
    assert [f"{row['onnx']},{row['vnnlib']}" for row in written] == list(rows)
    for row, reason in zip(written, rows.values(), strict=True):
        if reason:
            assert row["verdict"] == "error" and reason in row["reason"] and "\n" not in row["reason"]
        else:
            assert row["verdict"] in ("sat", "unsat") and row["reason"] == ""
    assert "7 instances: error 5" in out


@pytest.mark.parametrize("where", ["a folder", "in a missing folder"])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(where, corpus, tmp_path, capsys) -> None:
    def out(name: str) -> str:
        path = tmp_path / name if where == "a folder" else tmp_path / "missing" / name
        if where == "a folder":
            path.mkdir()
        return str(path)

    point = ["--input", str(corpus / "x.npy"), "--input-range", "0", "1"]
    npz, onnx, prop = str(corpus / "model.npz"), str(corpus / "model.onnx"), str(corpus / "prop.vnnlib")
    listing = corpus / "one.csv"
    listing.write_text("model.onnx,prop.vnnlib,30\n")
    for argv in (
        ["encode", npz, *point, "-o", out("out.mps")],
        ["export", npz, "-o", out("model.onnx")],
        ["attack", npz, *point, "--png", "", "--json", out("a.json")],
        ["attack", npz, *point, "--json", "", "--png", out("a.png")],
        ["verify", onnx, prop, "--counterexample", out("cex.txt")],
        ["verify", "--instances", str(listing), "--results", out("results.csv")],
    ):
        assert_one_line_error(argv, [], capsys)
    assert not (tmp_path / "missing").exists()
