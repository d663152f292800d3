"""``--bounds`` on ``prunemip encode`` and ``prunemip attack``: per-stage figures in the tables and JSON."""

from __future__ import annotations

import json

import pytest

from prunemip.cli import USER_ERROR, main
from tests.cli.test_cli import assert_user_error, correct_index, digits_model, run  # noqa: F401 (fixtures)


@pytest.mark.parametrize("method", ["ia", "linear", "lp", "auto"])
def test_encode_prints_the_bounds_stages(method, digits_model, tmp_path, capsys) -> None:  # noqa: F811
    output = tmp_path / "out.mps"
    point = ["--dataset", "digits", "--index", "7", "--eps", "0.1"]
    bounds = ["--bounds", method, "--bounds-budget", "5"]
    code, out, _ = run(["encode", str(digits_model), *point, *bounds, "-o", str(output)], capsys)
    assert code == 0 and output.exists()
    assert "Neuron bounds by stage" in out and "Σ(u − l)" in out
    expected = {"ia": ["ia"], "linear": ["ia", "linear"], "lp": ["ia", "linear", "lp"]}.get(method)
    for stage in expected or ["ia", "linear"]:
        assert f"│ {stage:>6} │" in out or f"{stage} " in out


def test_attack_json_records_stages_and_gradient_attack(
    digits_model,  # noqa: F811
    correct_index,  # noqa: F811
    tmp_path,
    capsys,
) -> None:
    result_path = tmp_path / "r.json"
    point = ["--dataset", "digits", "--index", correct_index]
    outputs = ["--json", str(result_path), "--png", ""]
    flags = ["--eps", "0.02", "--bounds", "lp", "--no-pgd", "--mode", "optimize"]
    code, out, _ = run(["attack", str(digits_model), *point, *flags, *outputs], capsys)
    assert code == 0
    result = json.loads(result_path.read_text())
    stages = result["encoding"]["bounds_stages"]
    assert [s["method"] for s in stages] == ["ia", "linear", "lp"]
    assert stages[0]["unstable"] >= stages[1]["unstable"] >= stages[2]["unstable"]
    assert all(s["seconds"] >= 0 and s["total_width"] >= 0 for s in stages)
    assert result["pgd_seconds"] == 0.0 and "Neuron bounds by stage" in out
    code, out, _ = run(["attack", str(digits_model), *point, "--eps", "0.3", *outputs], capsys)
    result = json.loads(result_path.read_text())
    assert code == 0 and result["status"] == "adversarial" and result["check_passed"] is True
    assert result["pgd_seconds"] > 0 and "gradient attack" in out


def test_unknown_bounds_method_is_a_one_line_error(capsys) -> None:
    for command in ("encode", "attack"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "model.pt", "--bounds", "crown"])
        assert exit_info.value.code == USER_ERROR
        assert_user_error(USER_ERROR, capsys.readouterr().err, "--bounds")


def test_bounds_choices_are_the_bounds_methods() -> None:
    """Every command's ``--bounds`` offers exactly the registry's methods."""
    import argparse

    from prunemip.cli import build_parser
    from prunemip.solvers.methods import BOUNDS_METHODS, DEFAULT_BOUNDS

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    offered = [
        action.choices
        for parser in commands.choices.values()
        for action in parser._actions
        if "--bounds" in action.option_strings
    ]
    assert offered
    for choices in offered:
        assert sorted(choices) == sorted((DEFAULT_BOUNDS, *BOUNDS_METHODS))
