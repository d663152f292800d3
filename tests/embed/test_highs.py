"""highspy: add_network into the user's Highs model, its handle, remove() and errors."""

from __future__ import annotations

import io

import highspy
import numpy as np
import pytest
import scipy.sparse as sp

from prunemip.embed.highs import add_network
from prunemip.encoders.bigm import encode
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import HighsOptions, solve
from tests.conftest import assert_one_line, random_network

EXACT = HighsOptions(time_limit=60.0, threads=1, mip_rel_gap=0.0, extra={"mip_abs_gap": 0.0})


@pytest.fixture
def network() -> Network:
    return random_network(np.random.default_rng(7), [6, 12, 10, 3], 0.5, weight_scale=1.5)


def host_model(named: bool = True) -> highspy.Highs:
    """A small LP: six bounded columns, a budget row, an extra free column, an objective."""
    highs = highspy.Highs()
    highs.silent()
    highs.setOptionValue("mip_rel_gap", 0.0)
    if named:
        x = highs.addVariables(6, lb=0.0, ub=1.0, name_prefix="x", obj=[1.0, 2.0, 0.5, 0.0, 1.0, 3.0])
        highs.addVariable(lb=-2.0, ub=2.0, name="slack")
        highs.addConstr(highs.qsum(x[k] for k in range(6)) <= 2.5, name="budget")
    else:
        empty = np.zeros(0, dtype=np.int32)
        highs.addCols(
            7, np.array([1, 2, 0.5, 0, 1, 3, 0.0]), np.zeros(7), np.ones(7), 0, empty, empty, np.zeros(0)
        )
        highs.addRows(
            1,
            np.array([-np.inf]),
            np.array([2.5]),
            6,
            np.array([0], dtype=np.int32),
            np.arange(6, dtype=np.int32),
            np.ones(6),
        )
    highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
    return highs


def snapshot(highs: highspy.Highs) -> dict[str, object]:
    """The model as data; integrality [] (no integers) and all-continuous are the same model."""
    lp = highs.getLp()
    matrix = lp.a_matrix_
    shape = (lp.num_row_, lp.num_col_)
    if matrix.format_ == highspy.MatrixFormat.kRowwise:
        a = sp.csr_matrix((matrix.value_, matrix.index_, matrix.start_), shape=shape)
    else:
        a = sp.csc_matrix((matrix.value_, matrix.index_, matrix.start_), shape=shape)
    integrality = [int(t) for t in lp.integrality_] or [0] * lp.num_col_
    return {
        "shape": shape,
        "matrix": a.toarray().tolist(),
        "cost": list(lp.col_cost_),
        "col_bounds": (list(lp.col_lower_), list(lp.col_upper_)),
        "row_bounds": (list(lp.row_lower_), list(lp.row_upper_)),
        "names": (list(lp.col_names_), list(lp.row_names_)),
        "integrality": integrality,
        "sense": lp.sense_,
        "offset": lp.offset_,
    }


@pytest.mark.parametrize("named", [True, False])
def test_remove_restores_the_host_model(network: Network, named: bool) -> None:
    highs = host_model(named)
    highs.run()
    before_objective = highs.getInfo().objective_function_value
    before = snapshot(highs)
    handle = add_network(highs, network, inputs=list(range(6)), outputs=None, input_bounds=(0.1, 0.9))
    assert highs.getNumCol() == 7 + handle.columns.size and highs.getNumRow() == 1 + handle.rows.size
    assert handle.rows.size == handle.mip.n_rows + 6  # the tighter box as six rows
    highs.run()  # solving in between changes nothing either
    handle.remove()
    assert snapshot(highs) == before
    highs.run()
    assert highs.getInfo().objective_function_value == pytest.approx(before_objective)
    assert highs.getSolution().dual_valid  # still solved as an LP
    with pytest.raises(PrunemipError, match="removed"):
        handle.get_error()


def test_names_and_integrality(network: Network) -> None:
    highs = host_model(named=True)
    handle = add_network(highs, network, inputs=highs.getVariables()[:6], name="surrogate")
    lp = highs.getLp()
    assert lp.col_names_[:7] == ["x0", "x1", "x2", "x3", "x4", "x5", "slack"]
    assert all(name.startswith("surrogate.") for name in lp.col_names_[7:])
    assert lp.row_names_[0] == "budget" and all(n.startswith("surrogate.") for n in lp.row_names_[1:])
    integers = [c for c, t in enumerate(lp.integrality_) if t == highspy.HighsVarType.kInteger]
    assert integers == sorted(handle.binary_columns.tolist())
    assert len(integers) == handle.stats.binaries
    with pytest.raises(PrunemipError) as error:
        add_network(highs, network, inputs=list(range(6)), name="surrogate")
    assert_one_line(error, "already holds a network named 'surrogate'")
    out = io.StringIO()
    handle.print_stats(file=out)
    assert f"{handle.columns.size} columns" in out.getvalue()
    unnamed = host_model(named=False)
    add_network(unnamed, network, inputs=np.arange(6))
    assert unnamed.getLp().col_names_ == []


def test_outputs_linked_and_optimum(network: Network) -> None:
    highs = host_model(named=True)
    y = highs.addVariables(3, lb=-100.0, ub=100.0, name_prefix="y")
    handle = add_network(highs, network, inputs=list(range(6)), outputs=y)
    assert handle.output_columns.tolist() == [v.index for v in y]
    highs.changeColsCost(7, np.arange(7, dtype=np.int32), np.zeros(7))  # objective: y1 − y0 only
    highs.changeColsCost(2, np.array([y[1].index, y[0].index], dtype=np.int32), np.array([1.0, -1.0]))
    highs.run()
    assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    value = highs.getInfo().objective_function_value
    # the same network and budget through prunemip's own MIP: the budget row added to the MipModel
    mip = encode(network, InputRegion.box(np.zeros(6), np.ones(6))).with_margin_objective(1, 0)
    own = highspy.Highs()
    own.silent()
    from prunemip.solvers.highs import to_highs

    to_highs(mip, own)
    own.addRow(-np.inf, 2.5, 6, mip.input_columns.astype(np.int32), np.ones(6))
    own.setOptionValue("mip_rel_gap", 0.0)
    own.run()
    assert value == pytest.approx(own.getInfo().objective_function_value, abs=1e-6)
    assert np.max(handle.get_error()) < 1e-6
    assert np.sum(handle.input_values()) <= 2.5 + 1e-7


def test_repeated_input_column(network: Network) -> None:
    """Two network inputs fed by one column: the formulation with x2 = x3."""
    highs = host_model(named=True)
    handle = add_network(highs, network, inputs=[0, 1, 2, 2, 4, 5])
    outputs = handle.output_vars
    highs.maximize(outputs[2] - outputs[1])
    x = handle.input_values()
    assert x[2] == x[3]
    assert np.max(handle.get_error()) < 1e-6
    reference = solve(
        encode(network, InputRegion.box(np.zeros(6), np.ones(6))).with_margin_objective(2, 1), EXACT
    )
    assert reference.objective is not None
    assert highs.getInfo().objective_function_value <= reference.objective + 1e-6


# ----------------------------------------------------------------------------- errors
def test_unbounded_column_is_named(network: Network) -> None:
    highs = host_model(named=True)
    highs.changeColBounds(3, 0.0, highspy.kHighsInf)
    with pytest.raises(PrunemipError) as error:
        add_network(highs, network, inputs=list(range(6)))
    assert_one_line(error, "input 3 (column 3 (x3))", "no finite upper bound")
    before = snapshot(highs)
    handle = add_network(highs, network, inputs=list(range(6)), input_bounds=(None, 1.0))
    assert handle.rows.size == handle.mip.n_rows + 1  # only x3 needed the extra row
    handle.remove()
    assert snapshot(highs) == before


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        (list(range(5)), "inputs holds 5 columns but the network has 6"),
        ([0, 1, 2, 3, 4, 99], "inputs[5] is column 99, but the model has 7 columns"),
        ([0, 1, 2, 3, 4, 0.5], "inputs[5] is not a column index"),
        ("x", "must be a list of column indices"),
    ],
)
def test_input_errors(network: Network, inputs, fragment: str) -> None:
    highs = host_model(named=True)
    before = snapshot(highs)
    with pytest.raises(PrunemipError) as error:
        add_network(highs, network, inputs=inputs)
    assert_one_line(error, fragment)
    assert snapshot(highs) == before  # nothing half-added


def test_get_error_needs_a_solution(network: Network) -> None:
    highs = host_model(named=True)
    handle = add_network(highs, network, inputs=list(range(6)), outputs=None)
    with pytest.raises(PrunemipError, match="run"):
        handle.get_error()
    with pytest.raises(PrunemipError) as error:
        add_network(highs, network, inputs=list(range(6)), outputs=[0, 1])
    assert_one_line(error, "outputs holds 2 columns but the network has 3")


@pytest.mark.parametrize("method", [None, "ia", "linear", "lp"])
def test_bounds_methods_reach_the_same_optimum(network: Network, method: str | None) -> None:
    if method in (None, "linear"):
        pytest.importorskip("prunemip.encoders.bounds.linear")
    if method == "lp":
        pytest.importorskip("prunemip.solvers.bounds")
    highs = host_model(named=True)
    highs.changeColsCost(7, np.arange(7, dtype=np.int32), np.zeros(7))
    handle = add_network(highs, network, inputs=list(range(6)), bounds_method=method)
    assert handle.stats.bounds_method == (method or "linear")
    outputs = handle.output_vars
    highs.maximize(outputs[0] - outputs[2])
    reference = solve(
        encode(network, InputRegion.box(np.zeros(6), np.ones(6))).with_margin_objective(0, 2), EXACT
    )
    # the host's budget row makes it a restriction of the reference: compare without it
    assert highs.getInfo().objective_function_value <= reference.objective + 1e-6
    highs.changeRowBounds(0, -highspy.kHighsInf, highspy.kHighsInf)
    highs.run()
    assert highs.getInfo().objective_function_value == pytest.approx(reference.objective, abs=1e-6)


def test_unknown_bounds_method(network: Network) -> None:
    highs = host_model(named=True)
    with pytest.raises(PrunemipError, match="unknown bounds method"):
        add_network(highs, network, inputs=list(range(6)), bounds_method="magic")
