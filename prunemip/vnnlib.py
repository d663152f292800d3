"""VNN-LIB properties (the SMT-LIB subset of VNN-COMP), read into linear disjunctions.

A property declares inputs ``X_i`` and outputs ``Y_j`` and asserts constraints; a
counterexample is an input, with the network's outputs, that satisfies every assertion.
Supported: ``declare-const``; ``assert`` over ``and``/``or`` of ``<=``, ``>=``, ``<``, ``>``
between linear terms (numbers, variables, ``+``, ``-``, ``*`` by a constant). Every
constraint must involve inputs only (bounds on single inputs) or outputs only. The
conjunction of all assertions is put in disjunctive normal form: each :class:`Disjunct`
is an input box and a conjunction of linear output constraints ``c·y ≤ d``.

Errors name the file and the line.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunemip.errors import PrunemipError
from prunemip.text_io import read_text

MAX_DISJUNCTS = 4096
_VARIABLE = re.compile(r"([XY])_(\d+)$")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Token:
    text: str
    line: int


@dataclass(frozen=True)
class OutputConstraint:
    """``coefficients · y ≤ rhs`` (``< rhs`` when ``strict``)."""

    coefficients: np.ndarray
    rhs: float
    strict: bool
    line: int

    def slack(self, outputs: np.ndarray) -> float:
        """``rhs − c·y``: ≥ 0 when satisfied (> 0 needed when strict).

        Args:
            outputs: the network's outputs ``y``, shape ``(n_outputs,)``.

        Returns:
            The slack.
        """
        return float(self.rhs - self.coefficients @ outputs)

    def holds(self, outputs: np.ndarray) -> bool:
        """Whether ``outputs`` satisfy the constraint (strictly when ``strict``).

        Args:
            outputs: the network's outputs ``y``, shape ``(n_outputs,)``.

        Returns:
            ``True`` when satisfied.
        """
        slack = self.slack(outputs)
        return slack > 0.0 if self.strict else slack >= 0.0


@dataclass(frozen=True)
class Disjunct:
    """Inputs in the box ``[lower, upper]`` whose outputs satisfy every constraint."""

    lower: np.ndarray
    upper: np.ndarray
    constraints: tuple[OutputConstraint, ...]

    def holds(self, x: np.ndarray, outputs: np.ndarray) -> bool:
        """Whether ``x`` lies in the box and ``outputs`` satisfy every constraint.

        Args:
            x: the input, shape ``(n_inputs,)``.
            outputs: the network's outputs at ``x``, shape ``(n_outputs,)``.

        Returns:
            ``True`` when this disjunct holds.
        """
        inside = bool(np.all(x >= self.lower) and np.all(x <= self.upper))
        return inside and all(c.holds(outputs) for c in self.constraints)


@dataclass(frozen=True)
class Property:
    """A counterexample exists iff some disjunct is satisfiable."""

    n_inputs: int
    n_outputs: int
    disjuncts: tuple[Disjunct, ...]
    source: str

    def satisfied_by(self, x: np.ndarray, outputs: np.ndarray) -> bool:
        """Whether ``(x, outputs)`` is a counterexample: some disjunct holds.

        Args:
            x: the input, shape ``(n_inputs,)``.
            outputs: the network's outputs at ``x``, shape ``(n_outputs,)``.

        Returns:
            ``True`` when some disjunct holds.
        """
        return any(d.holds(x, outputs) for d in self.disjuncts)


# ----------------------------------------------------------------------- s-expressions
def _tokens(text: str) -> list[Token]:
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split(";", 1)[0]
        for piece in re.findall(r"\(|\)|[^\s()]+", code):
            tokens.append(Token(piece, number))
    return tokens


def _parse(tokens: list[Token], source: str) -> list[list]:
    """Nested lists of tokens; the first element of every list is its opening parenthesis."""
    forms: list[list] = []
    stack: list[list] = []
    for token in tokens:
        if token.text == "(":
            stack.append([token])
        elif token.text == ")":
            if not stack:
                raise PrunemipError(f"{source}:{token.line}: unmatched ')'")
            form = stack.pop()
            (stack[-1] if stack else forms).append(form)
        else:
            if not stack:
                raise PrunemipError(f"{source}:{token.line}: {token.text!r} outside any (...) form")
            stack[-1].append(token)
    if stack:
        raise PrunemipError(f"{source}:{stack[-1][0].line}: '(' is never closed")
    return forms


def _line(form: list | Token) -> int:
    return form.line if isinstance(form, Token) else form[0].line


def _head(form: list | Token) -> str:
    if isinstance(form, Token) or len(form) < 2 or not isinstance(form[1], Token):
        return ""
    return form[1].text


# ----------------------------------------------------------------------- linear terms
Linear = dict[tuple[str, int] | None, float]  # variable → coefficient; None → constant


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.declared: dict[str, set[int]] = {"X": set(), "Y": set()}

    def fail(self, form: list | Token, message: str) -> PrunemipError:
        return PrunemipError(f"{self.source}:{_line(form)}: {message}")

    def declare(self, form: list) -> None:
        parts = form[1:]
        if len(parts) != 3 or not all(isinstance(p, Token) for p in parts) or parts[2].text != "Real":
            raise self.fail(form, "expected (declare-const X_i Real) or (declare-const Y_j Real)")
        match = _VARIABLE.match(parts[1].text)
        if not match:
            raise self.fail(form, f"variable {parts[1].text!r} must be named X_<i> or Y_<j>")
        self.declared[match.group(1)].add(int(match.group(2)))

    def linear(self, form: list | Token) -> Linear:
        if isinstance(form, Token):
            if _NUMBER.match(form.text):
                return {None: float(form.text)}
            match = _VARIABLE.match(form.text)
            if not match:
                raise self.fail(form, f"unknown symbol {form.text!r}")
            kind, index = match.group(1), int(match.group(2))
            if index not in self.declared[kind]:
                raise self.fail(form, f"{form.text} is used before its declare-const")
            return {(kind, index): 1.0}
        operator, args = _head(form), form[2:]
        terms = [self.linear(arg) for arg in args]
        if operator == "+" and terms:
            return _add(terms)
        if operator == "-" and len(terms) == 1:
            return _scale(terms[0], -1.0)
        if operator == "-" and terms:
            return _add([terms[0], *(_scale(t, -1.0) for t in terms[1:])])
        if operator == "*" and terms:
            constants = [t[None] for t in terms if set(t) == {None}]
            variable = [t for t in terms if set(t) != {None}]
            if len(variable) > 1:
                raise self.fail(form, "a product of variables is not linear")
            factor = float(np.prod(constants)) if constants else 1.0
            return _scale(variable[0], factor) if variable else {None: factor}
        raise self.fail(form, f"unsupported term ({operator} ...): use numbers, X_i, Y_j, +, -, *")

    def formula(self, form: list | Token) -> list[list[tuple[Linear, bool, int]]]:
        """DNF of ``form``: a list of conjunctions of atoms ``expr ≤ 0`` (``< 0`` when strict)."""
        if isinstance(form, Token):
            raise self.fail(form, f"expected a constraint, got {form.text!r}")
        operator, args = _head(form), form[2:]
        if operator in ("and", "or"):
            if not args:
                raise self.fail(form, f"({operator}) needs at least one argument")
            parts = [self.formula(arg) for arg in args]
            if operator == "or":
                return [conjunction for part in parts for conjunction in part]
            if int(np.prod([len(part) for part in parts], dtype=float)) > MAX_DISJUNCTS:
                raise self.fail(form, f"the property expands to more than {MAX_DISJUNCTS} disjuncts")
            return [list(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]
        if operator in ("<=", ">=", "<", ">"):
            if len(args) != 2:
                raise self.fail(form, f"({operator} a b) takes exactly two terms")
            left, right = self.linear(args[0]), self.linear(args[1])
            difference = (
                _add([left, _scale(right, -1.0)])
                if operator in ("<=", "<")
                else _add([right, _scale(left, -1.0)])
            )
            return [[(difference, operator in ("<", ">"), _line(form))]]
        raise self.fail(form, f"unsupported constraint ({operator} ...): use and, or, <=, >=, <, >")


def _add(terms: list[Linear]) -> Linear:
    total: Linear = {}
    for term in terms:
        for key, value in term.items():
            total[key] = total.get(key, 0.0) + value
    return total


def _scale(term: Linear, factor: float) -> Linear:
    return {key: factor * value for key, value in term.items()}


# ----------------------------------------------------------------------- disjuncts
def _disjunct(
    atoms: list[tuple[Linear, bool, int]], n_inputs: int, n_outputs: int, reader: _Reader
) -> Disjunct | None:
    """Box and output constraints of one conjunction; ``None`` when its box is empty."""
    lower, upper = np.full(n_inputs, -np.inf), np.full(n_inputs, np.inf)
    constraints = []
    for expression, strict, line in atoms:
        constant = expression.get(None, 0.0)
        variables = {key: value for key, value in expression.items() if key is not None and value != 0.0}
        kinds = {kind for kind, _ in variables}
        where = f"{reader.source}:{line}"
        if not variables:
            if constant > 0 or (strict and constant >= 0):
                return None  # a constant constraint that is false: this disjunct is empty
            continue
        if kinds == {"X"}:
            if len(variables) != 1:
                raise PrunemipError(
                    f"{where}: prunemip supports only bounds on single inputs, not sums of X_i"
                )
            (((_, index), coefficient),) = variables.items()
            bound = -constant / coefficient
            if coefficient > 0:
                upper[index] = min(upper[index], bound)
            else:
                lower[index] = max(lower[index], bound)
        elif kinds == {"Y"}:
            coefficients = np.zeros(n_outputs)
            for (_, index), value in variables.items():
                coefficients[index] = value
            constraints.append(OutputConstraint(coefficients, -constant, strict, line))
        else:
            raise PrunemipError(f"{where}: a constraint may not mix inputs X_i and outputs Y_j")
    unbounded = ~(np.isfinite(lower) & np.isfinite(upper))
    if np.any(unbounded):
        index = int(np.argmax(unbounded))
        raise PrunemipError(f"{reader.source}: input X_{index} has no finite lower and upper bound")
    if np.any(lower > upper):
        return None
    return Disjunct(lower, upper, tuple(constraints))


def parse_vnnlib(text: str, source: str = "<vnnlib>") -> Property:
    """Parse VNN-LIB text into a :class:`Property`.

    Args:
        text: the property, in the supported subset (see the module docstring).
        source: the name errors give (e.g. the file name).

    Returns:
        The property, its assertions in disjunctive normal form (disjuncts with an empty input box dropped).

    Raises:
        PrunemipError: for unsupported syntax, undeclared or unbounded variables, or more than
            :data:`MAX_DISJUNCTS` disjuncts; the message names the line.
    """
    reader = _Reader(source)
    conjunction: list[list[list[tuple[Linear, bool, int]]]] = []
    for form in _parse(_tokens(text), source):
        keyword = _head(form)
        if keyword == "declare-const":
            reader.declare(form)
        elif keyword == "assert":
            if len(form) != 3:
                raise reader.fail(form, "(assert ...) takes exactly one formula")
            conjunction.append(reader.formula(form[2]))
        else:
            raise reader.fail(form, f"unsupported command ({keyword or '...'}): use declare-const and assert")
    for kind in ("X", "Y"):
        indices = reader.declared[kind]
        if not indices:
            raise PrunemipError(f"{source}: no {kind}_ variables are declared")
        if indices != set(range(len(indices))):
            missing = min(set(range(max(indices) + 1)) - indices)
            raise PrunemipError(f"{source}: {kind}_{missing} is not declared (indices must be 0, 1, 2, ...)")
    n_inputs, n_outputs = len(reader.declared["X"]), len(reader.declared["Y"])
    combos = itertools.product(*conjunction) if conjunction else iter([()])
    disjuncts = []
    for combo in combos:
        if len(disjuncts) > MAX_DISJUNCTS:
            raise PrunemipError(f"{source}: the property expands to more than {MAX_DISJUNCTS} disjuncts")
        disjunct = _disjunct(list(itertools.chain.from_iterable(combo)), n_inputs, n_outputs, reader)
        if disjunct is not None:
            disjuncts.append(disjunct)
    return Property(n_inputs, n_outputs, tuple(disjuncts), source)


def load_vnnlib(path: str | Path) -> Property:
    """Read a ``.vnnlib`` file (plain text).

    Args:
        path: the property file.

    Returns:
        The property (see :func:`parse_vnnlib`).

    Raises:
        PrunemipError: when the file is missing, unreadable or not a supported property.
    """
    return parse_vnnlib(read_text(path, "property file"), Path(path).name)


def counterexample_text(x: np.ndarray, outputs: np.ndarray) -> str:
    """VNN-COMP's witness format: ``sat`` then ``((X_0 v) ... (Y_0 v) ...)``.

    Args:
        x: the counterexample input, shape ``(n_inputs,)``.
        outputs: the network's outputs at ``x``, shape ``(n_outputs,)``.

    Returns:
        The text, ending with a newline.
    """
    entries = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)]
    entries += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(outputs)]
    return "sat\n(" + "\n ".join(entries) + ")\n"


def robustness_vnnlib(
    x0: np.ndarray,
    label: int,
    radius: float,
    n_outputs: int,
    lower: float | np.ndarray = 0.0,
    upper: float | np.ndarray = 1.0,
    comment: str = "",
) -> str:
    """L∞ robustness of ``x0`` as VNN-LIB, as VNN-COMP's ``mnist_fc`` states it.

    The inputs lie in the box ``[x0 − ε, x0 + ε] ∩ [lower, upper]``; a counterexample is an
    input there whose logit ``Y_j ≥ Y_label`` for some ``j ≠ label`` (one disjunct per class).

    Args:
        x0: the centre, any shape (flattened: ``X_i`` is its ``i``-th entry).
        label: the true class.
        radius: ε ≥ 0.
        n_outputs: the network's number of outputs.
        lower: the smallest valid input value (a scalar or one per input).
        upper: the largest valid input value (likewise).
        comment: lines written first as ``;`` comments (none when empty).

    Returns:
        The property's text, ending with a newline.
    """
    flat = np.asarray(x0, dtype=np.float64).reshape(-1)
    lines = [f"; {line}" for line in comment.splitlines()]
    lines += [f"(declare-const X_{i} Real)" for i in range(flat.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    highs = np.minimum(upper, flat + radius)
    lows = np.maximum(lower, flat - radius)
    for i in range(flat.size):
        lines.append(f"(assert (<= X_{i} {float(highs[i])!r}))")
        lines.append(f"(assert (>= X_{i} {float(lows[i])!r}))")
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_outputs) if j != label)
    lines.append(f"(assert (or {others}))")
    return "\n".join(lines) + "\n"
