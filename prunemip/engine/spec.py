"""The one question the engine answers, and how attacks and properties map onto it.

A :class:`Spec` asks: is there an ``x`` in the input region ``R`` (a box, or an L∞ or L1
ball ∩ box) whose outputs ``y = f(x)`` satisfy one of the conjunctions ``C_j·y ≤ d_j``
(:class:`~prunemip.engine.subdomains.OutputRows`, strict rows ``<``)? The *slack* of a
conjunction at ``x`` is ``s_j(x) = min_k (d_jk − c_jk·f(x))``: ``x`` satisfies it when
``s_j(x) ≥ 0`` (``> 0`` on a strict row), and refuting the conjunction means proving
``max_R s_j ≤ −τ``.

* An attack on the label ``ℓ`` is one conjunction per target class ``t``, the strict row
  ``y_ℓ − y_t < 0``, whose slack is the margin ``y_t − y_ℓ`` (:func:`attack_spec`); the
  targets come in the order they are tried.
* A VNN-LIB property is a disjunction of (input box, output constraints) pairs: one Spec per
  distinct box, holding that box's disjuncts (:func:`property_specs`). A disjunct without
  output constraints holds everywhere: the row ``0·y ≤ 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prunemip.engine.subdomains import OutputRows
from prunemip.errors import PrunemipError
from prunemip.regions import InputRegion
from prunemip.vnnlib import Disjunct, Property


@dataclass(frozen=True, eq=False)
class Spec:
    """Is there an ``x ∈ region`` whose outputs satisfy one of ``disjuncts``?"""

    region: InputRegion
    disjuncts: tuple[OutputRows, ...]
    names: tuple[str, ...]  #: one label per disjunct, for progress lines ("target 3")

    def __post_init__(self) -> None:
        if not self.disjuncts or len(self.names) != len(self.disjuncts):
            raise PrunemipError(
                f"a spec needs disjuncts and one name each, got {len(self.disjuncts)} and {len(self.names)}"
            )
        widths = {rows.coefficients.shape[1] for rows in self.disjuncts}
        if len(widths) != 1:
            raise PrunemipError(f"the disjuncts constrain different output counts: {sorted(widths)}")

    @property
    def n_outputs(self) -> int:
        """The outputs the rows constrain."""
        return int(self.disjuncts[0].coefficients.shape[1])

    def slacks(self, outputs: np.ndarray) -> np.ndarray:
        """Each conjunction's slack ``s_j = min_k (d_jk − c_jk·y)`` at one output vector.

        Args:
            outputs: ``y``, shape ``(n_outputs,)``.

        Returns:
            One slack per disjunct.
        """
        return np.array([-rows.violation(outputs)[0] for rows in self.disjuncts])


def margin_rows(n_outputs: int, label: int, target: int) -> OutputRows:
    """The attack on ``target``: the strict row ``y_label − y_target < 0``, of slack ``y_target − y_label``.

    Args:
        n_outputs: the network's outputs.
        label: the true class.
        target: the target class.

    Returns:
        The one-row conjunction.
    """
    row = np.zeros(n_outputs)
    row[label], row[target] = 1.0, -1.0
    return OutputRows.create(row, [0.0], [True])


def attack_spec(region: InputRegion, n_outputs: int, label: int, targets: Sequence[int]) -> Spec:
    """An attack on ``label`` over ``region``: one margin row per target, in order.

    Args:
        region: the input region.
        n_outputs: the network's outputs.
        label: the true class.
        targets: the target classes, in the order they are tried.

    Returns:
        The spec.
    """
    rows = tuple(margin_rows(n_outputs, label, t) for t in targets)
    return Spec(region, rows, tuple(f"target {t}" for t in targets))


def disjunct_rows(disjunct: Disjunct, n_outputs: int) -> OutputRows:
    """A VNN-LIB disjunct's output constraints as rows ``C y ≤ d`` (``0·y ≤ 0`` without any).

    Args:
        disjunct: the disjunct.
        n_outputs: the network's outputs.

    Returns:
        The rows.
    """
    constraints = disjunct.constraints
    if not constraints:
        return OutputRows.create(np.zeros((1, n_outputs)), [0.0])
    return OutputRows.create(
        np.array([c.coefficients for c in constraints]),
        np.array([c.rhs for c in constraints]),
        np.array([c.strict for c in constraints]),
    )


def property_specs(prop: Property) -> list[tuple[Spec, list[int]]]:
    """The property's disjuncts grouped by input box, in order of first appearance.

    Args:
        prop: the VNN-LIB property.

    Returns:
        Per distinct box, its spec and the indices of its disjuncts in ``prop.disjuncts``.
    """
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for index, disjunct in enumerate(prop.disjuncts):
        groups.setdefault((disjunct.lower.tobytes(), disjunct.upper.tobytes()), []).append(index)
    specs = []
    for indices in groups.values():
        first = prop.disjuncts[indices[0]]
        region = InputRegion.box(first.lower, first.upper)
        rows = tuple(disjunct_rows(prop.disjuncts[i], prop.n_outputs) for i in indices)
        specs.append((Spec(region, rows, tuple(f"disjunct {i + 1}" for i in indices)), indices))
    return specs
