"""experiments/benchmarks/api_build.py runs (tiny nets) and reports consistent figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"


@pytest.mark.slow
def test_api_build_quick(capsys, tmp_path):
    pytest.importorskip("pyomo")
    pytest.importorskip("omlt")
    spec = importlib.util.spec_from_file_location("benchmark_api_build", BENCHMARKS / "api_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "api.json"
    results = module.main(["--quick", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Goals" in printed and out.exists()
    for row in results["results"]:
        for key in ("pm_pyomo", "pm_omlt", "pm_highspy"):
            assert row[key]["binaries"] == row["unstable_live"]
        assert row["omlt"]["binaries"] == row["hidden_neurons"]
        assert row["pm_pyomo"]["terms"] == row["pm_highspy"]["nnz"]  # the MipModel nonzeros: no 0*x terms
    assert results["optimum"]["agree"] is True
