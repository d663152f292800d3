"""The benchmark scripts under experiments/benchmarks run and report consistent figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (and pickling) look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_encode_speed_quick(capsys, tmp_path):
    pytest.importorskip("pyomo")
    pytest.importorskip("omlt")
    encode_speed = load_script("encode_speed")
    out = tmp_path / "results.json"
    results = encode_speed.main(["--quick", "--check-optimum", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "OMLT build s" in printed and "Goals" in printed
    assert out.exists()
    rows = results["results"]
    assert len(rows) == 2  # one tiny net at 0 % and 90 %
    for row in rows:
        pm, om = row["prunemip"], row["omlt"]
        assert pm["binaries"] == pm["unstable_live"] <= pm["unstable"]
        assert om["binaries"] == row["hidden_neurons"]
        assert pm["nnz"] == pm["expected_substituted"]
        assert pm["variable_formulation"]["nnz"] == pm["expected_variable"]
        assert om["nnz"] <= om["terms"]
    # pruned weights stay out of prunemip's matrix but remain as 0*x terms in OMLT's expressions
    dense, sparse = rows
    assert sparse["prunemip"]["nnz"] < dense["prunemip"]["nnz"]
    assert sparse["omlt"]["terms"] == dense["omlt"]["terms"]
    assert results["optimum"]["agree"] is True


@pytest.mark.slow
def test_pruning_accuracy_quick(capsys, tmp_path):
    pruning_accuracy = load_script("pruning_accuracy")
    out = tmp_path / "results.json"
    results = pruning_accuracy.main(
        ["--quick", "--jobs", "1", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "### digits" in printed and "Goals" in printed and out.exists()
    rows = results["rows"]
    methods = {row["method"] for row in rows}
    assert methods == set(pruning_accuracy.METHODS)
    assert len(rows) == 2 * (1 + 2 * (len(methods) - 1))  # 2 seeds; dense once, the rest at 2 sparsities
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0
        if row["method"] not in pruning_accuracy.STRUCTURED:
            assert row["achieved_sparsity"] == pytest.approx(row["sparsity"], abs=1e-3)
    assert all(line.startswith(("PASS", "FAIL")) for line in results["goals"])
