"""The public face: ``import prunemip`` gives the user's API, lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import prunemip


@pytest.mark.parametrize("name", sorted(prunemip._LAZY))
def test_every_public_name_is_the_object_of_its_module(name: str) -> None:
    module = importlib.import_module(prunemip._LAZY[name])
    assert getattr(prunemip, name) is getattr(module, name)
    assert name in prunemip.__all__ and name in dir(prunemip)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        prunemip.no_such_thing  # noqa: B018


def test_importing_prunemip_loads_neither_torch_nor_highs() -> None:
    code = "import sys, prunemip; print(sorted(m for m in ('torch', 'highspy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_readme_pipeline_runs_through_the_public_names() -> None:
    import numpy as np

    network = prunemip.Network.from_arrays(
        [np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([[1.0, 0.0], [0.0, 1.0]])],
        [np.zeros(2), np.zeros(2)],
        input_spec=prunemip.InputSpec.create(2, 0.0, 1.0),
    )
    x0 = np.array([0.6, 0.2])
    region = prunemip.InputRegion.ball("linf", x0, 0.05, 0.0, 1.0)
    bounds = prunemip.compute_bounds(network, region, "linear")
    result = prunemip.solve(prunemip.encode(network, region, bounds).with_margin_objective(target=1, label=0))
    assert result.status == prunemip.SolveStatus.OPTIMAL
    # max over the region of y1 − y0 = relu(0.5(x0+x1)) − relu(x0 − x1): at x = (0.55, 0.25).
    assert result.objective == pytest.approx(0.4 - 0.3, abs=1e-7)
