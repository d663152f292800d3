"""VNN-LIB properties: linear terms, the disjunctive normal form of input boxes and output
constraints, what a counterexample must satisfy, and one-line errors that name the line."""

from __future__ import annotations

import numpy as np
import pytest

from prunemip.errors import PrunemipError
from prunemip.vnnlib import MAX_DISJUNCTS, counterexample_text, load_vnnlib, parse_vnnlib
from tests.conftest import assert_one_line

HEADER = (
    "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
)
BOX = "(assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 -1.0))\n(assert (<= X_1 1.0))\n"


def constraints(disjunct) -> list[tuple[list[float], float, bool]]:
    return [(list(c.coefficients), c.rhs, c.strict) for c in disjunct.constraints]


# ----------------------------------------------------------------------- parsing
def test_parser_reads_linear_terms_and_disjunctions():
    text = HEADER + BOX + "(assert (or (and (<= Y_0 3) (> Y_1 (* 2 Y_0))) (< (+ Y_0 Y_1 -1) 0.5)))\n"
    prop = parse_vnnlib(text)
    assert (prop.n_inputs, prop.n_outputs, len(prop.disjuncts)) == (2, 2, 2)
    first, second = prop.disjuncts
    np.testing.assert_array_equal(first.lower, [-1, -1])
    assert constraints(first) == [([1.0, 0.0], 3.0, False), ([2.0, -1.0], 0.0, True)]
    assert constraints(second) == [([1.0, 1.0], 1.5, True)]
    # An empty input box removes its disjunct; the property is then unsat.
    empty = parse_vnnlib(
        HEADER + "(assert (>= X_0 1))(assert (<= X_0 0))(assert (<= X_1 1))(assert (>= X_1 0))"
    )
    assert empty.disjuncts == ()


def test_terms_numbers_and_comments():
    text = (
        HEADER
        + "; a comment line\n"
        + "(assert (<= X_0 .5)) ; bounds with odd number forms\n(assert (>= X_0 -2.))\n"
        + "(assert (<= (* 2 X_1) 1e-1))\n(assert (<= (- X_1) 3E0))\n(assert (<= X_1 7))\n"
        + "(assert (<= (- Y_0 (* 0.5 Y_1) 1) (* 2 3)))\n"
        + "(assert (>= (- Y_1) (+ Y_0 Y_0)))\n"
    )
    (disjunct,) = parse_vnnlib(text).disjuncts
    np.testing.assert_allclose(disjunct.lower, [-2.0, -3.0])
    np.testing.assert_allclose(disjunct.upper, [0.5, 0.05])  # the tighter of two upper bounds
    assert constraints(disjunct) == [([1.0, -0.5], 7.0, False), ([2.0, 1.0], 0.0, False)]


def test_input_boxes_in_a_disjunction_give_one_disjunct_each():
    """VNN-COMP's shape: (or (and box₁) (and box₂)) with output constraints conjoined to each."""
    box = "(and (>= X_0 {a}) (<= X_0 {b}) (>= X_1 0) (<= X_1 1))"
    text = HEADER + f"(assert (or {box.format(a=0, b=0.5)} {box.format(a=0.5, b=1)}))\n"
    text += "(assert (or (>= Y_0 Y_1) (> Y_1 2)))\n"
    prop = parse_vnnlib(text, "boxes.vnnlib")
    assert len(prop.disjuncts) == 4 and prop.source == "boxes.vnnlib"
    boxes = [(d.lower[0], d.upper[0]) for d in prop.disjuncts]
    assert sorted(set(boxes)) == [(0.0, 0.5), (0.5, 1.0)]
    outputs = {tuple(map(tuple, (c.coefficients for c in d.constraints))) for d in prop.disjuncts}
    assert outputs == {((-1.0, 1.0),), ((0.0, -1.0),)}


def test_constant_constraints_keep_or_drop_their_disjunct():
    true_and_false = HEADER + BOX + "(assert (or (and (<= 1 2) (<= Y_0 0)) (and (< 2 2) (<= Y_1 0))))"
    (disjunct,) = parse_vnnlib(true_and_false).disjuncts
    assert constraints(disjunct) == [([1.0, 0.0], 0.0, False)]
    no_outputs = parse_vnnlib(HEADER + BOX)
    assert len(no_outputs.disjuncts) == 1 and no_outputs.disjuncts[0].constraints == ()


# ----------------------------------------------------------------------- semantics
def test_a_counterexample_satisfies_a_disjunct_strictly_where_asked():
    prop = parse_vnnlib(HEADER + BOX + "(assert (or (< Y_0 Y_1) (>= Y_0 5)))")
    x = np.array([0.5, -0.5])
    assert prop.satisfied_by(x, np.array([1.0, 2.0]))
    assert not prop.satisfied_by(x, np.array([2.0, 2.0]))  # strict: Y_0 < Y_1 fails at equality
    assert prop.satisfied_by(x, np.array([5.0, 2.0]))  # non-strict: Y_0 >= 5 holds at equality
    assert not prop.satisfied_by(np.array([1.5, 0.0]), np.array([1.0, 2.0]))  # outside the box
    strict = prop.disjuncts[0].constraints[0]
    assert strict.slack(np.array([1.0, 2.0])) == 1.0 and strict.slack(np.array([2.0, 2.0])) == 0.0


def test_counterexample_text_reads_back_exactly():
    x, y = np.array([0.1, -1 / 3]), np.array([1e-300, 2.5])
    text = counterexample_text(x, y)
    assert text.startswith("sat\n((X_0 0.1)")
    values = dict(pair.strip("()").split() for pair in text.split("\n", 1)[1].strip()[1:-1].split("\n "))
    assert [float(values[f"X_{i}"]) for i in range(2)] == list(x)
    assert [float(values[f"Y_{j}"]) for j in range(2)] == list(y)


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (HEADER + "(assert (<= X_0 1)\n", 5, "never closed"),
        (HEADER + BOX + "\n(assert (<= (* Y_0 Y_1) 1))", 10, "not linear"),
        (HEADER + BOX + "(assert (<= (+ X_0 Y_0) 1))", 9, "mix inputs"),
        (HEADER + BOX + "(assert (<= (+ X_0 X_1) 1))", 9, "single inputs"),
        (HEADER + BOX + "(assert (= Y_0 1))", 9, "unsupported constraint"),
        (HEADER + BOX + "(assert (<= Y_7 1))", 9, "before its declare-const"),
        (HEADER + "(declare-fun f () Real)", 5, "unsupported command"),
        ("(declare-const Z_0 Real)", 1, "X_<i> or Y_<j>"),
        (HEADER + ")", 5, "unmatched"),
        (HEADER + BOX + "(assert (<= Y_0 1) (<= Y_1 1))", 9, "exactly one formula"),
        (HEADER + BOX + "(assert (and))", 9, "at least one argument"),
        (HEADER + BOX + "(assert (<= Y_0 1 2))", 9, "exactly two terms"),
        (HEADER + BOX + "(assert (<= (/ Y_0 2) 1))", 9, "unsupported term"),
        (HEADER + BOX + "(assert (<= Y_0 one))", 9, "unknown symbol"),
        (HEADER + BOX + "(assert Y_0)", 9, "expected a constraint"),
        (HEADER + "X_0", 5, "outside any (...) form"),
        ("(declare-const X_0 Integer)", 1, "declare-const X_i Real"),
    ],
)
def test_malformed_vnnlib_points_at_the_line(text, line, fragment):
    with pytest.raises(PrunemipError) as error:
        parse_vnnlib(text, "prop.vnnlib")
    message = str(error.value)
    assert f"prop.vnnlib:{line}:" in message and fragment in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(declare-const X_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))", "no Y_ variables"),
        ("(declare-const Y_0 Real)", "no X_ variables"),
        (HEADER.replace("X_1", "X_2") + "(assert (<= Y_0 1))", "X_1 is not declared"),
        (HEADER + "(assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n(assert (<= Y_0 1))", "X_1 has no finite"),
    ],
)
def test_incomplete_properties_are_one_line_errors(text, fragment):
    with pytest.raises(PrunemipError) as error:
        parse_vnnlib(text, "prop.vnnlib")
    assert_one_line(error, fragment)


def test_a_property_that_expands_past_the_limit_is_refused():
    """An (and ...) of k two-way (or ...) has 2ᵏ disjuncts."""

    def conjunction(k: int) -> str:
        return "(assert (and " + " ".join(f"(or (<= Y_0 {i}) (<= Y_1 {i}))" for i in range(k)) + "))\n"

    assert 2**13 > MAX_DISJUNCTS >= 2**7
    with pytest.raises(PrunemipError) as error:
        parse_vnnlib(HEADER + BOX + conjunction(13), "big.vnnlib")
    assert_one_line(error, f"big.vnnlib:9: the property expands to more than {MAX_DISJUNCTS} disjuncts")
    small = parse_vnnlib(HEADER + BOX + conjunction(7))
    assert len(small.disjuncts) == 2**7 and all(len(d.constraints) == 7 for d in small.disjuncts)


def test_files_that_cannot_be_read_are_one_line_errors(tmp_path):
    with pytest.raises(PrunemipError) as error:
        load_vnnlib(tmp_path / "missing.vnnlib")
    assert_one_line(error, "does not exist")
    binary = tmp_path / "binary.vnnlib"
    binary.write_bytes(b"\xff\xfe(declare-const X_0 Real)")
    with pytest.raises(PrunemipError) as error:
        load_vnnlib(binary)
    assert_one_line(error, "cannot read")
    good = tmp_path / "prop.vnnlib"
    good.write_text(HEADER + BOX + "(assert (<= Y_0 Y_1))")
    prop = load_vnnlib(good)
    assert prop.source == "prop.vnnlib" and len(prop.disjuncts) == 1
