"""The one registry of neuron-bounds methods: what ``--bounds`` and a study's ``bounds`` accept.

Data only (no HiGHS, no numpy), so the CLI can build its choices and help without loading
a solver. The methods run cheapest first, each tightening the previous one's bounds, as in
MIPVerify's progressive scheme (Tjeng et al., ICLR 2019); :mod:`prunemip.solvers.bounds`
runs them. Adding a method: implement its stage in a module of its own, add one
:class:`BoundsMethod` here, and bind the name to the stage (and to the method it runs after)
in :data:`prunemip.solvers.bounds.STAGES`; a test checks that the two list the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoundsMethod:
    """A bounds method: its name and a one-line description for ``--help``."""

    name: str
    summary: str


#: Every method, cheapest first; ``auto`` is the default progressive pipeline.
METHODS: tuple[BoundsMethod, ...] = (
    BoundsMethod("ia", "interval arithmetic"),
    BoundsMethod("linear", "ia + linear relaxation by backward substitution (CROWN/DeepPoly)"),
    BoundsMethod("alpha", "linear + optimised lower ReLU slopes (α-CROWN)"),
    BoundsMethod("lp", "linear + LP tightening of the unstable neurons"),
    BoundsMethod("mip", "lp + MIP tightening of the last hidden layer"),
    BoundsMethod("auto", "linear, then LP only when enough neurons stay unstable"),
)
DEFAULT_BOUNDS = "auto"
#: The names of the methods that are single stages (every method but ``auto``), cheapest first.
BOUNDS_METHODS: tuple[str, ...] = tuple(m.name for m in METHODS if m.name != DEFAULT_BOUNDS)
#: Every name ``--bounds`` accepts.
BOUNDS_CHOICES: tuple[str, ...] = tuple(m.name for m in METHODS)
