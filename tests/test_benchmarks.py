"""The benchmark scripts under experiments/benchmarks run and report consistent figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
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
