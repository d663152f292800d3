"""VNN-LIB verification: verdicts against brute force, counterexamples, errors with lines."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prunemip.cli import USER_ERROR, main
from prunemip.engine.verify import VerifyOptions, verify
from prunemip.errors import PrunemipError
from prunemip.model_io import load_network
from prunemip.network import InputSpec, Layer, Network
from prunemip.regions import InputRegion
from prunemip.vnnlib import load_vnnlib, parse_vnnlib
from tests.conftest import brute_force_margin

HEADER = (
    "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
)
BOX = "(assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 -1.0))\n(assert (<= X_1 1.0))\n"


def export_onnx(model: nn.Module, path: Path, n_inputs: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, n_inputs),), str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-4-4-2 ReLU net (8 hidden ReLUs, small enough for brute force over patterns)."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    return export_onnx(model, tmp_path_factory.mktemp("nets") / "tiny.onnx", 2)


@pytest.fixture(scope="module")
def extremes(tiny_onnx: Path) -> dict[str, float]:
    """Exact maxima of Y_0 − Y_1 and Y_1 − Y_0 over the box [-1, 1]², by brute force."""
    network = load_network(tiny_onnx)
    box = InputRegion.box(-np.ones(2), np.ones(2))
    return {
        "y0_minus_y1": brute_force_margin(network, box, 0, 1),
        "y1_minus_y0": brute_force_margin(network, box, 1, 0),
    }


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def property_text(*disjuncts: str) -> str:
    body = disjuncts[0] if len(disjuncts) == 1 else "(or " + " ".join(f"(and {d})" for d in disjuncts) + ")"
    return HEADER + BOX + f"(assert {body})\n"


def y0_beats_y1_by(c: float) -> str:
    return f"(>= (- Y_0 Y_1) {float(c)!r})"


def y1_beats_y0_by(c: float) -> str:
    return f"(<= (+ Y_0 (* -1.0 Y_1)) {-float(c)!r})"


@pytest.mark.parametrize(
    ("surrogate", "bounds"), [(None, "auto"), (0.5, "auto"), (None, "ia"), (None, "mip")]
)
def test_verdicts_match_brute_force(tiny_onnx, extremes, tmp_path, surrogate, bounds):
    network = load_network(tiny_onnx)
    high, low = extremes["y0_minus_y1"], extremes["y1_minus_y0"]
    cases = {
        "sat": property_text(y0_beats_y1_by(high - 0.05)),
        "unsat": property_text(y0_beats_y1_by(high + 0.05)),
        "sat-disjunctive": property_text(y0_beats_y1_by(high + 0.05), y1_beats_y0_by(low - 0.05)),
        "unsat-disjunctive": property_text(y0_beats_y1_by(high + 0.05), y1_beats_y0_by(low + 0.05)),
    }
    for name, text in cases.items():
        prop = load_vnnlib(write(tmp_path, f"{name}.vnnlib", text))
        result = verify(network, prop, 30.0, VerifyOptions(bounds=bounds, surrogate_sparsity=surrogate))
        assert result.verdict == name.split("-")[0], (name, result)
        if result.verdict == "sat":
            assert prop.satisfied_by(result.x, network.forward(result.x))
            assert np.all(result.x >= -1.0) and np.all(result.x <= 1.0)


def test_unsat_needs_the_mip_when_sampling_and_bounds_cannot_decide(tiny_onnx, extremes, tmp_path):
    network = load_network(tiny_onnx)
    prop = load_vnnlib(
        write(tmp_path, "tight.vnnlib", property_text(y0_beats_y1_by(extremes["y0_minus_y1"] + 1e-3)))
    )
    result = verify(network, prop, 30.0, VerifyOptions(bab=False))
    assert result.verdict == "unsat" and result.stage in ("mip", "bounds")


def test_unsat_within_the_solver_tolerances_is_settled_with_tighter_ones(
    tiny_onnx, extremes, tmp_path, monkeypatch
):
    """Y_0 − Y_1 ≥ max + 1e-3 is unsat by 1e-3, less than loose HiGHS tolerances (0.05) can
    move the slack: the MIP is solved again with 1000× tighter ones, which prove it."""
    import prunemip.engine.mip as mip_module
    from prunemip.solvers.highs import HighsOptions

    network = load_network(tiny_onnx)
    prop = load_vnnlib(
        write(tmp_path, "tight.vnnlib", property_text(y0_beats_y1_by(extremes["y0_minus_y1"] + 1e-3)))
    )
    tolerances = []
    real_solve = mip_module.solve

    def spy(model, options, **kwargs):
        tolerances.append(options.feasibility_tolerance)
        return real_solve(model, options, **kwargs)

    monkeypatch.setattr(mip_module, "solve", spy)
    loose = HighsOptions(
        threads=1, extra={"mip_feasibility_tolerance": 0.05, "primal_feasibility_tolerance": 0.05}
    )
    result = verify(network, prop, 30.0, VerifyOptions(bounds="ia", highs=loose, bab=False))
    assert result.verdict == "unsat" and result.stage == "mip"
    assert tolerances == [0.05, pytest.approx(5e-5)]


def test_bounds_and_mip_share_the_time_budget(tiny_onnx, extremes, tmp_path, monkeypatch):
    """The tightening stage spends the disjunct's budget: a stage that uses it all leaves no
    MIP and the verdict is a timeout, not a run past the deadline."""
    import prunemip.engine.decide as decide_module
    import prunemip.engine.mip as mip_module

    network = load_network(tiny_onnx)
    prop = load_vnnlib(
        write(tmp_path, "tight.vnnlib", property_text(y0_beats_y1_by(extremes["y0_minus_y1"] + 1e-3)))
    )
    solves = []

    def slow_bounds(network, region, bounds, method, *, time_limit, **kwargs):  # spends it all, no tightening
        time.sleep(time_limit)
        return bounds

    monkeypatch.setattr(decide_module, "continue_bounds", slow_bounds)
    monkeypatch.setattr(mip_module, "solve", lambda *a, **k: solves.append(1))
    result = verify(network, prop, 1.0, VerifyOptions(bounds="lp", bab=False))
    assert result.verdict == "timeout" and result.disjuncts == ["timeout"] and not solves


def test_counterexample_file_reads_back_and_satisfies_the_property(tiny_onnx, extremes, tmp_path, capsys):
    prop_path = write(tmp_path, "sat.vnnlib", property_text(y0_beats_y1_by(extremes["y0_minus_y1"] - 0.01)))
    witness = tmp_path / "cex.txt"
    code = main(
        ["verify", str(tiny_onnx), str(prop_path), "--timeout", "30", "--counterexample", str(witness)]
    )
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "sat"
    lines = witness.read_text().splitlines()
    assert lines[0] == "sat"
    values = {}
    for entry in " ".join(lines[1:]).replace("(", " ").replace(")", " ").split("\n"):
        tokens = entry.split()
        for name, value in zip(tokens[::2], tokens[1::2], strict=True):
            values[name] = float(value)
    x = np.array([values["X_0"], values["X_1"]])
    y = np.array([values["Y_0"], values["Y_1"]])
    network = load_network(tiny_onnx)
    np.testing.assert_allclose(network.forward(x), y, rtol=0, atol=0)
    assert load_vnnlib(prop_path).satisfied_by(x, y)


def test_batch_mode_writes_one_line_per_instance(tiny_onnx, extremes, tmp_path, capsys):
    high = extremes["y0_minus_y1"]
    write(tmp_path, "a.vnnlib", property_text(y0_beats_y1_by(high - 0.05)))
    write(tmp_path, "b.vnnlib", property_text(y0_beats_y1_by(high + 0.05)))
    (tmp_path / "net.onnx").write_bytes(tiny_onnx.read_bytes())
    listing = write(tmp_path, "instances.csv", "net.onnx,a.vnnlib,30\nnet.onnx,b.vnnlib,30\n")
    results = tmp_path / "results.csv"
    assert main(["verify", "--instances", str(listing), "--results", str(results), "--bounds", "lp"]) == 0
    rows = results.read_text().splitlines()
    assert rows[0] == "onnx,vnnlib,verdict,seconds,reason"
    assert [row.split(",")[2] for row in rows[1:]] == ["sat", "unsat"]
    assert "2 instances: sat 1, unsat 1" in capsys.readouterr().out


# ----------------------------------------------------------------------- property errors
def test_unbounded_input_and_size_mismatch_are_errors(tiny_onnx):
    with pytest.raises(PrunemipError, match="X_1 has no finite"):
        parse_vnnlib(HEADER + "(assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n(assert (<= Y_0 1))")
    three = parse_vnnlib(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const X_2 Real)(declare-const Y_0 Real)"
        "(declare-const Y_1 Real)(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= X_1 1))(assert (>= X_1 0))"
        "(assert (<= X_2 1))(assert (>= X_2 0))(assert (<= Y_0 0))"
    )
    with pytest.raises(PrunemipError, match="3 inputs"):
        verify(load_network(tiny_onnx), three, 10.0)


def test_cli_errors_are_one_line(tiny_onnx, tmp_path, capsys):
    bad = write(tmp_path, "bad.vnnlib", HEADER + "(assert (<= Y_0 1)")
    assert main(["verify", str(tiny_onnx), str(bad)]) == USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.vnnlib:5:" in err[0]
    sigmoid = export_onnx(
        nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 2)), tmp_path / "s.onnx", 2
    )
    good = write(tmp_path, "p.vnnlib", HEADER + BOX + "(assert (<= Y_0 Y_1))")
    assert main(["verify", str(sigmoid), str(good)]) == USER_ERROR
    assert "Sigmoid" in capsys.readouterr().err


def _box_property(n_inputs: int, n_outputs: int, assertion: str) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    for i in range(n_inputs):
        lines += [f"(assert (>= X_{i} 0.0))", f"(assert (<= X_{i} 1.0))"]
    return "\n".join([*lines, f"(assert {assertion})"]) + "\n"


def _network(*layers: Layer) -> Network:
    n = layers[0].n_in
    return Network(layers, InputSpec((n,), np.zeros(n), np.ones(n)))


def test_gradient_falsification_finds_a_corner_random_sampling_misses():
    """Y_0 = ReLU(Σx) ≥ 19.5 on [0, 1]^20 holds only within 0.5 of the all-ones corner
    (uniform samples have Σx ≈ 10 ± 1.3; random corners hit it with probability 2⁻²⁰)."""
    n = 20
    network = _network(
        Layer.create(np.ones((1, n)), np.zeros(1)), Layer.create(np.ones((1, 1)), [0.0], "identity")
    )
    prop = parse_vnnlib(_box_property(n, 1, "(>= Y_0 19.5)"))
    result = verify(network, prop, 30.0)
    assert result.verdict == "sat" and result.stage == "gradient"
    assert prop.satisfied_by(result.x, network.forward(result.x))


def test_specification_bound_rules_out_what_output_bounds_cannot():
    """Y_0 and Y_1 are the same function, so Y_0 − Y_1 ≥ 0.1 is impossible; the output
    intervals overlap, only the bound on Y_0 − Y_1 itself sees it (no MIP needed)."""
    rng = np.random.default_rng(0)
    hidden = Layer.create(rng.normal(size=(6, 3)), rng.normal(size=6))
    row = rng.normal(size=(1, 6))
    network = _network(hidden, Layer.create(np.vstack([row, row]), [0.5, 0.5], "identity"))
    prop = parse_vnnlib(_box_property(3, 2, "(>= (- Y_0 Y_1) 0.1)"))
    result = verify(network, prop, 30.0)
    assert result.verdict == "unsat" and result.stage == "bounds"


def test_each_input_box_is_falsified_with_its_own_disjuncts(tiny_onnx):
    """Two disjuncts over two boxes: the first is impossible, the second holds everywhere in its
    box, so the falsification's point lies in the second box and satisfies that disjunct."""
    network = load_network(tiny_onnx)
    left = "(>= X_0 -1.0) (<= X_0 0.0) (>= X_1 -1.0) (<= X_1 1.0)"
    right = "(>= X_0 0.5) (<= X_0 1.0) (>= X_1 -1.0) (<= X_1 1.0)"
    body = f"(or (and {left} (>= Y_0 1e9)) (and {right} (<= (- Y_0 Y_1) 1e9)))"
    prop = parse_vnnlib(HEADER + f"(assert {body})\n")
    result = verify(network, prop, 30.0)
    assert result.verdict == "sat" and result.stage in ("random", "gradient")
    assert 0.5 <= result.x[0] <= 1.0 and -1.0 <= result.x[1] <= 1.0
    assert prop.disjuncts[1].holds(result.x, network.forward(result.x))


def test_a_disjunct_without_output_constraints_holds_at_its_centre(tiny_onnx):
    network = load_network(tiny_onnx)
    prop = parse_vnnlib(HEADER + BOX + "(assert (or (and (>= Y_0 1e9)) (and (<= X_0 0.5))))\n")
    result = verify(network, prop, 30.0)
    assert result.verdict == "sat" and result.stage == "random"
    np.testing.assert_array_equal(result.x, [-0.25, 0.0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where no GPU is present")
def test_cuda_without_a_gpu_is_a_one_line_error(tiny_onnx, tmp_path, capsys):
    prop = write(tmp_path, "p.vnnlib", property_text(y0_beats_y1_by(0.0)))
    assert main(["verify", str(tiny_onnx), str(prop), "--device", "cuda"]) == USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda" in err[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_verdicts(tiny_onnx, extremes, tmp_path):
    network = load_network(tiny_onnx)
    high, low = extremes["y0_minus_y1"], extremes["y1_minus_y0"]
    texts = [
        property_text(y0_beats_y1_by(high - 0.05)),
        property_text(y0_beats_y1_by(high + 0.05)),
        property_text(y0_beats_y1_by(high + 0.05), y1_beats_y0_by(low - 0.05)),
        property_text(y0_beats_y1_by(high + 0.05), y1_beats_y0_by(low + 0.05)),
    ]
    for text in texts:
        prop = parse_vnnlib(text)
        cpu = verify(network, prop, 30.0)
        cuda = verify(network, prop, 30.0, VerifyOptions(device="cuda"))
        assert cpu.verdict == cuda.verdict, text
        if cuda.verdict == "sat":
            assert prop.satisfied_by(cuda.x, network.forward(cuda.x))
