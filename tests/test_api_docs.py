"""docs/api.md's snippets run as written, and the worked example runs (small settings)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyomo.environ")
pytest.importorskip("omlt")

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_api_doc_snippets_run() -> None:
    blocks = python_blocks(ROOT / "docs" / "api.md")
    assert len(blocks) >= 5
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for index, block in enumerate(blocks):
            code = compile(block, f"docs/api.md[python block {index}]", "exec")
            exec(code, namespace)
    printed = out.getvalue()
    assert "input 2 (x[2]) has no finite upper bound" in printed
    assert "binary" in printed  # print_stats ran


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_surrogate_optimisation_example() -> None:
    example = load_example("surrogate_optimisation")
    lines: list[str] = []
    outcome = example.run(example.QUICK, log=lines.append)
    results = outcome["results"]
    assert set(results) == {"dense", "pruned"}
    for row in results.values():
        assert row["status"] == "optimal"
        assert row["feasible"]
        assert row["forward_error"] < 1e-6
        assert row["x"] @ example.COSTS <= example.BUDGET + 1e-6
    dense, pruned = results["dense"], results["pruned"]
    assert pruned["weights"] < dense["weights"]
    assert pruned["nonzeros"] < dense["nonzeros"] and pruned["binaries"] <= dense["binaries"]
    assert any("solve time dense / pruned" in line for line in lines)
    assert np.isfinite(outcome["baseline"])
