"""``prunemip train`` and ``prunemip prune`` end to end on digits, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunemip.model_io import load_network
from tests.cli.test_cli import assert_user_error, run

TINY = ["--arch", "16,16", "--epochs", "2", "--batch-size", "64", "--lr", "0.005", "--quiet"]
RIGL = ["--method", "rigl", "--sparsity", "0.8", "--update-interval", "5"]


def test_train_reports_and_saves_a_model_the_attack_command_loads(tmp_path, capsys) -> None:
    runs = str(tmp_path / "runs")
    model = tmp_path / "model.pt"
    code, out, _ = run(["train", *TINY, *RIGL, "--runs-dir", runs, "-o", str(model)], capsys)
    assert code == 0, out
    assert "Pruning report: rigl" in out and "compression ratio" in out and "theoretical speed-up" in out
    network = load_network(model)
    assert network.metadata["method"] == "rigl" and network.metadata["hparams"]["sparsity"] == 0.8
    code, out, _ = run(["train", *TINY, *RIGL, "--runs-dir", runs, "-o", str(tmp_path / "model.npz")], capsys)
    assert code == 0 and "nothing was retrained" in out
    assert load_network(tmp_path / "model.npz").nnz == network.nnz
    attack = ["--dataset", "digits", "--index", "0", "--eps", "0.01", "--time-limit", "20"]
    code, out, _ = run(["attack", str(model), *attack, "--json", "", "--png", ""], capsys)
    assert code == 0
    assert any(word in out for word in ("adversarial", "robust", "misclassified", "timeout"))


def test_prune_an_existing_model_with_fine_tuning(tmp_path, capsys) -> None:
    dense = tmp_path / "dense.pt"
    model = torch.nn.Sequential(torch.nn.Linear(64, 20), torch.nn.ReLU(), torch.nn.Linear(20, 10))
    torch.save(model.state_dict(), dense)
    pruned = tmp_path / "pruned.npz"
    method = ["--method", "magnitude", "--sparsity", "0.9", "--finetune", "1"]
    output = ["--quiet", "--runs-dir", str(tmp_path / "runs"), "-o", str(pruned)]
    code, out, _ = run(["prune", str(dense), "--dataset", "digits", *method, *output], capsys)
    assert code == 0, out
    assert "before fine-tuning" in out
    network = load_network(pruned)
    assert network.layers[0].nnz == round(0.1 * 64 * 20)
    assert network.metadata["accuracy_before_finetune"] is not None


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["train", "--method", "lotery"], ["unknown pruning method 'lotery'", "rigl"]),
        (["train", "--method", "snip", "--sparsity", "1.0"], ["sparsity must lie in [0, 1)"]),
        (["train", "--method", "snip", "--sparsity", "-0.5"], ["sparsity must lie in [0, 1)"]),
        (["train", "--arch", "100,x"], ["architecture '100,x'"]),
        (["train", "--arch", "0"], ["architecture '0'"]),
        (
            ["train", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent"],
            ["no fashion-mnist data found"],
        ),
        (["train", "-o", "model.txt"], [".npz or .onnx or .pt"]),
        (["train", "--device", "cuda"], ["cuda"]),
        (["train", "--method", "imp", "--allocation", "erk", "--sparsity", "0.5"], ["allocation"]),
        (
            ["train", "--method", "rigl", "--allocation", "random", "--sparsity", "0.5"],
            ["unknown allocation"],
        ),
        (["prune", "missing.pt", "--sparsity", "0.5"], ["missing.pt"]),
        (["prune", "missing.pt"], ["--sparsity"]),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, fragments) -> None:
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    monkeypatch.chdir(tmp_path)
    extra = ["--epochs", "1"] if argv[0] == "train" else []
    code, _, err = run([*argv, *extra, "--quiet"], capsys)
    assert_user_error(code, err, *fragments)
    assert not Path("runs").exists() or "--device" in argv or "--dataset" in argv


def test_prune_refuses_a_method_that_trains_from_scratch(tmp_path, capsys) -> None:
    dense = tmp_path / "dense.pt"
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    torch.save(model.state_dict(), dense)
    options = ["--method", "rigl", "--sparsity", "0.5", "--quiet"]
    code, _, err = run(["prune", str(dense), *options, "--runs-dir", str(tmp_path)], capsys)
    assert_user_error(code, err, "prunemip train")
