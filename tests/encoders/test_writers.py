"""MPS/LP writers: HiGHS reads the files back and reaches the same optimum; writes are atomic."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from prunemip.encoders import writers
from prunemip.encoders.bigm import FORMULATIONS, encode
from prunemip.encoders.writers import write_model
from prunemip.errors import PrunemipError
from prunemip.network import Layer, Network
from prunemip.solvers.highs import solve
from prunemip.solvers.result import SolveStatus
from tests.conftest import EXACT, ball_region, random_network


def read_and_solve(path):
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("mip_rel_gap", 0.0)
    highs.setOptionValue("mip_abs_gap", 0.0)
    highs.setOptionValue("threads", 1)
    assert highs.readModel(str(path)) == highspy.HighsStatus.kOk
    highs.run()
    assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return highs


def models(rng):
    """Margin MIPs with binaries over L∞ and L1 balls, both formulations; one with a pruned input."""
    network = random_network(rng, [5, 8, 6, 3], 0.4)
    w0 = network.layers[0].weight.tolil()
    w0[:, 2] = 0.0  # input 2 feeds nothing: its column has no matrix entry
    network = Network.from_arrays(
        [w0.tocsr(), *(layer.weight for layer in network.layers[1:])],
        [layer.bias for layer in network.layers],
        network.input_spec,
    )
    x0 = rng.random(5)
    for norm, radius in (("linf", 0.15), ("l1", 0.6)):
        region = ball_region(network, x0, norm, radius)
        for formulation in FORMULATIONS:
            model = encode(network, region, formulation=formulation).with_margin_objective(1, 0)
            assert model.stats.binaries > 0
            yield f"{norm}-{formulation}", model


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
def test_written_model_reaches_the_same_optimum(tmp_path, rng, suffix):
    for name, model in models(rng):
        direct = solve(model, EXACT)
        assert direct.status == SolveStatus.OPTIMAL
        variants = [
            (model, direct.objective),
            # an offset and the opposite sense must survive the round trip too
            (model.with_objective(-model.objective, maximize=False, offset=2.5), 2.5 - direct.objective),
        ]
        for variant, expected in variants:
            path = write_model(variant, tmp_path / f"{name}{suffix}")
            assert path.exists() and path.suffix == suffix
            highs = read_and_solve(path)
            assert highs.getNumCol() == variant.n_cols and highs.getNumRow() == variant.n_rows
            lp = highs.getLp()
            integer = [t == highspy.HighsVarType.kInteger for t in lp.integrality_]
            assert sum(integer) == variant.stats.binaries
            assert highs.getInfo().objective_function_value == pytest.approx(expected, abs=1e-7)
            # same names, same matrix: read the column order back by name
            names = variant.column_names()
            read_names = [highs.getColName(j)[1] for j in range(highs.getNumCol())]
            assert sorted(read_names) == sorted(names)
            order = [names.index(n) for n in read_names]
            np.testing.assert_array_equal(np.asarray(lp.col_lower_), variant.col_lower[order])
            np.testing.assert_array_equal(np.asarray(lp.col_upper_), variant.col_upper[order])


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
def test_model_without_rows_round_trips(tmp_path, rng, suffix):
    """A first layer that is stably inactive leaves only fixed logits: no rows at all."""
    network = random_network(rng, [3, 4, 5, 2], 0.0)
    layers = list(network.layers)
    layers[0] = Layer.create(layers[0].weight, np.full(4, -100.0))
    network = Network(tuple(layers), network.input_spec)
    model = encode(network, ball_region(network, np.full(3, 0.5), "linf", 0.5)).with_margin_objective(1, 0)
    assert model.n_rows == 0
    highs = read_and_solve(write_model(model, tmp_path / f"empty{suffix}"))
    assert highs.getNumRow() == 0 and highs.getNumCol() == model.n_cols
    logits = network.forward(np.full(3, 0.5))
    assert highs.getInfo().objective_function_value == pytest.approx(logits[1] - logits[0], abs=1e-12)


def test_mps_numbers_round_trip_exactly(tmp_path, rng):
    _name, model = next(models(rng))
    path = write_model(model, tmp_path / "exact.mps")
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    assert highs.readModel(str(path)) == highspy.HighsStatus.kOk
    lp = highs.getLp()
    values = np.sort(np.asarray(lp.a_matrix_.value_))
    np.testing.assert_array_equal(values, np.sort(model.matrix.data))


def test_failed_write_leaves_no_file(tmp_path, rng, monkeypatch):
    _, model = next(models(rng))
    calls = {"n": 0}
    original = writers._num

    def failing(value):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("disk full")
        return original(value)

    monkeypatch.setattr(writers, "_num", failing)
    for suffix in (".mps", ".lp"):
        calls["n"] = 0
        target = tmp_path / f"model{suffix}"
        with pytest.raises(RuntimeError, match="disk full"):
            write_model(model, target)
        assert list(tmp_path.iterdir()) == []
    # An existing file is left untouched by a failed overwrite.
    target = tmp_path / "keep.lp"
    target.write_text("old\n")
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        write_model(model, target)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.lp"]


def test_bad_suffix_or_folder_is_a_one_line_error(tmp_path, rng):
    _, model = next(models(rng))
    for name in ("model.txt", "model", "model.mps.gz"):
        with pytest.raises(PrunemipError, match=r"\.mps or \.lp") as error:
            write_model(model, tmp_path / name)
        assert "\n" not in str(error.value)
    with pytest.raises(PrunemipError, match="does not exist") as error:
        write_model(model, tmp_path / "missing" / "model.lp")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []
    # upper-case suffixes are accepted
    assert write_model(model, tmp_path / "MODEL.MPS").exists()
