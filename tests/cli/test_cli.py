"""The command line: outputs that are right, and user mistakes that are one clear line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import highspy
import numpy as np
import pytest
import torch
from torch import nn

from prunemip.cli import USER_ERROR, build_parser, main
from prunemip.data import load_dataset
from prunemip.model_io import load_network


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickly trained 64-16-10 digits classifier saved as a plain state_dict."""
    torch.manual_seed(0)
    data = load_dataset("digits", "train")
    images = torch.as_tensor(data.flat(), dtype=torch.float32)
    labels = torch.as_tensor(data.labels)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("models") / "digits.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def correct_index(digits_model: Path) -> str:
    """A digits test image the model classifies correctly."""
    network = load_network(digits_model)
    data = load_dataset("digits")
    return str(int(np.flatnonzero(network.predict(data.flat()) == data.labels)[0]))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == USER_ERROR
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("prunemip: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_every_command_has_help_with_an_example() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse has no public accessor
    for name, subparser in commands.items():
        text = subparser.format_help()
        assert "example" in text, name
        assert f"prunemip {name}" in text, name


def test_encode_writes_a_model_highs_solves_like_prunemip(digits_model, tmp_path, capsys) -> None:
    output = tmp_path / "out.mps"
    flags = ["--dataset", "digits", "--index", "7", "--norm", "linf", "--eps", "0.05"]
    code, out, _ = run(["encode", str(digits_model), *flags, "-o", str(output)], capsys)
    assert code == 0
    assert "binaries" in out and f"wrote {output}" in out
    highs = highspy.Highs()
    highs.silent()
    highs.readModel(str(output))
    network = load_network(digits_model).with_input_spec(load_dataset("digits").input_spec())
    nnz_weights = network.nnz
    # Every surviving weight appears at most twice (substituted) and nothing else grows with weights.
    assert highs.getNumNz() <= 2 * nnz_weights + 10 * (16 + 10)
    assert highs.run() == highspy.HighsStatus.kOk
    margin = highs.getInfo().objective_function_value
    x = np.array(highs.getSolution().col_value)[:64]
    data = load_dataset("digits")
    logits = network.forward(x)
    label = int(data.labels[7])
    assert np.max(np.abs(x - data.flat()[7])) <= 0.05 + 1e-9
    assert margin == pytest.approx(np.max(np.delete(logits, label)) - logits[label], abs=1e-5) or margin < 0


def test_encode_lp_and_input_file(digits_model, tmp_path, capsys) -> None:
    point = tmp_path / "x.npy"
    np.save(point, load_dataset("digits").flat()[3].reshape(8, 8))
    output = tmp_path / "out.lp"
    flags = ["--input-range", "0", "1", "--norm", "l1", "--eps", "2"]
    code, out, _ = run(
        ["encode", str(digits_model), "--input", str(point), *flags, "-o", str(output)], capsys
    )
    assert code == 0
    assert output.read_text().startswith("\\ prunemip")
    assert "L1 ball of radius 2" in out


def test_attack_writes_a_verified_example(digits_model, correct_index, tmp_path, capsys) -> None:
    result_path, picture = tmp_path / "adv.json", tmp_path / "adv.png"
    point = ["--dataset", "digits", "--index", correct_index]
    outputs = ["--json", str(result_path), "--png", str(picture)]
    code, out, _ = run(
        ["attack", str(digits_model), *point, "--eps", "0.3", "--time-limit", "60", *outputs], capsys
    )
    assert code == 0
    result = json.loads(result_path.read_text())
    assert result["status"] == "adversarial" and result["check_passed"] is True
    network = load_network(digits_model)
    x_adv = np.array(result["x_adv"])
    x0 = load_dataset("digits").flat()[int(correct_index)]
    assert np.max(np.abs(x_adv - x0)) <= 0.3 + 1e-12
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    logits = network.forward(x_adv)
    assert logits[result["target"]] - logits[result["label"]] == pytest.approx(result["margin"], abs=1e-12)
    assert int(np.argmax(logits)) != result["label"]
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "check passed" in out


def test_attack_proves_robustness_for_a_tiny_radius(digits_model, correct_index, tmp_path, capsys) -> None:
    result_path = tmp_path / "robust.json"
    point = ["--dataset", "digits", "--index", correct_index]
    code, _, _ = run(
        ["attack", str(digits_model), *point, "--eps", "0.001", "--json", str(result_path), "--png", ""],
        capsys,
    )
    assert code == 0
    result = json.loads(result_path.read_text())
    assert result["status"] == "robust"
    assert all(t["dual_bound"] <= 0 for t in result["targets"])


def test_attack_says_why_it_draws_no_picture(digits_model, correct_index, tmp_path, capsys) -> None:
    picture = tmp_path / "adv.png"
    point = ["--dataset", "digits", "--index", correct_index]
    outputs = ["--json", "", "--png", str(picture)]
    code, out, _ = run(["attack", str(digits_model), *point, "--eps", "0.001", *outputs], capsys)
    assert code == 0
    assert not picture.exists()
    assert f"no picture written to {picture}: robust" in " ".join(out.split())


def test_experiment_steps_have_examples_and_prune_shows_only_its_defaults() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse has no public accessor
    steps = commands["experiment"]._subparsers._group_actions[0].choices
    for name, step in steps.items():
        text = step.format_help()
        assert "example" in text and f"prunemip experiment {name} " in text, name
    prune = " ".join(commands["prune"].format_help().split())
    assert "removed, in [0, 1) (required)" in prune and "removed, in [0, 1) (0.0)" not in prune
    allocations = re.search(r"per-layer allocation: [^(]*\(default: ([^)]*)\)", prune).group(1)
    assert allocations == "random global, magnitude global, snip global, grasp global, synflow global"


def test_info_prints_layers(digits_model, capsys) -> None:
    code, out, _ = run(["info", str(digits_model)], capsys)
    assert code == 0
    assert "64-16-10" in out and "unbounded" in out


# ----------------------------------------------------------------------- user mistakes
@pytest.fixture
def nan_model(tmp_path: Path) -> Path:
    model = nn.Sequential(nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def conv_model(tmp_path: Path) -> Path:
    path = tmp_path / "conv.pt"
    torch.save(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).state_dict(), path)
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("missing", ("does-not-exist.pt",)),
        ("conv", ("convolution",)),
        ("sigmoid", ("Sigmoid",)),
        ("nan", ("NaN",)),
        ("wrong_size", ("10 values",)),
        ("negative_eps", ("radius",)),
        ("unbounded", ("input range", "--input-range")),
        ("bad_suffix", (".mps or .lp",)),
        ("missing_folder", ("does not exist",)),
        ("bad_index", ("out of range",)),
        ("bad_target", ("--target",)),
        ("unknown_dataset", ("unknown dataset",)),
    ],
)
def test_user_mistakes_give_one_line_and_no_output(
    case, fragments, digits_model, nan_model, conv_model, tmp_path, capsys
) -> None:
    output = tmp_path / "out.mps"
    point = tmp_path / "x.npy"
    np.save(point, np.zeros(10))
    base = ["--dataset", "digits", "--index", "0", "-o", str(output)]
    argv = {
        "missing": ["encode", str(tmp_path / "does-not-exist.pt"), *base],
        "conv": ["encode", str(conv_model), *base],
        "sigmoid": ["encode", "SIGMOID", *base],
        "nan": ["encode", str(nan_model), *base],
        "wrong_size": [
            "encode",
            str(digits_model),
            "--input",
            str(point),
            "--input-range",
            "0",
            "1",
            "-o",
            str(output),
        ],
        "negative_eps": ["encode", str(digits_model), *base, "--eps", "-0.1"],
        "unbounded": ["encode", str(digits_model), "--input", str(_zeros(tmp_path)), "-o", str(output)],
        "bad_suffix": ["encode", str(digits_model), "--dataset", "digits", "-o", str(tmp_path / "out.txt")],
        "missing_folder": [
            "encode",
            str(digits_model),
            "--dataset",
            "digits",
            "-o",
            str(tmp_path / "no" / "x.mps"),
        ],
        "bad_index": ["encode", str(digits_model), "--dataset", "digits", "--index", "100000"],
        "bad_target": ["encode", str(digits_model), *base, "--target", "42"],
        "unknown_dataset": ["encode", str(digits_model), "--dataset", "cifar-nope"],
    }[case]
    if case == "sigmoid":
        argv[1] = str(_sigmoid_onnx(tmp_path))
    code, _, err = run(argv, capsys)
    assert_user_error(code, err, *fragments)
    assert not output.exists()
    assert not (tmp_path / "out.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _zeros(tmp_path: Path) -> Path:
    path = tmp_path / "zeros64.npy"
    np.save(path, np.zeros(64))
    return path


def _sigmoid_onnx(tmp_path: Path) -> Path:
    path = tmp_path / "sigmoid.onnx"
    model = nn.Sequential(nn.Linear(64, 4), nn.Sigmoid(), nn.Linear(4, 10))
    torch.onnx.export(model, (torch.zeros(1, 64),), str(path), dynamo=False)
    return path


def test_attack_error_writes_neither_json_nor_png(digits_model, tmp_path, capsys) -> None:
    result_path, picture = tmp_path / "a.json", tmp_path / "a.png"
    outputs = ["--json", str(result_path), "--png", str(picture)]
    code, _, err = run(["attack", str(digits_model), "--dataset", "digits", "--eps", "-1", *outputs], capsys)
    assert_user_error(code, err, "radius")
    assert not result_path.exists() and not picture.exists()


def test_bad_arguments_are_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["attack", "model.pt", "--mode", "prove"])
    assert exit_info.value.code == USER_ERROR
    assert_user_error(USER_ERROR, capsys.readouterr().err, "--mode")


@pytest.mark.parametrize("budget", ["-1", "nan", "lots"])
def test_report_rejects_a_bad_accuracy_budget(budget, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "report", "results.jsonl", "--accuracy-budget", budget])
    assert exit_info.value.code == USER_ERROR
    assert_user_error(USER_ERROR, capsys.readouterr().err, "--accuracy-budget")


def test_console_script_reports_errors_without_traceback(tmp_path) -> None:
    """The real entry point (``python -m prunemip``) exits non-zero with one line on stderr."""
    completed = subprocess.run(
        [sys.executable, "-m", "prunemip", "attack", str(tmp_path / "missing.onnx"), "--dataset", "digits"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == USER_ERROR
    assert_user_error(completed.returncode, completed.stderr, "missing.onnx")


def test_demo_small_run_compares_dense_and_pruned(tmp_path, capsys) -> None:
    training = ["--hidden", "16", "16", "--epochs", "5", "--finetune-epochs", "2"]
    code, out, _ = run(
        ["demo", *training, "--images", "2", "--time-limit", "10", "--save-dir", str(tmp_path)], capsys
    )
    assert code == 0
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    dense, pruned = rows
    assert pruned["nnz"] < dense["nnz"]
    for row in rows:
        assert row["images"] == 2
        assert row["adversarial"] + row["robust"] + row["timeout"] == 2
        assert row["binaries"] <= row["unstable"]
    assert load_network(tmp_path / "sparse.npz").nnz == pruned["nnz"]
    assert "Dense vs pruned" in out
    assert "ia bounds and the MIP" in out  # the demo measures the MIP: no gradient attack


def test_demo_attacks_use_the_requested_bounds_and_gradient_attack() -> None:
    from prunemip.study.demo import DemoConfig, run_demo

    config = DemoConfig(hidden=(8,), epochs=2, finetune_epochs=1, images=2, time_limit=5.0, radius=0.2)
    for gradient_attack in (False, True):
        reports = run_demo(replace(config, gradient_attack=gradient_attack), log=lambda _: None)
        attacks = [a for report in reports for a in report.attacks]
        # The gradient attack runs for targets the bounds leave open: on some image here.
        assert any(a.pgd_seconds > 0 for a in attacks) == gradient_attack
        for attack in attacks:
            if attack.encoding is not None:
                assert attack.encoding.bounds_stages[-1]["method"] == "ia"
