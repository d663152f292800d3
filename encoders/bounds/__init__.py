"""Neuron bounds over an input region, cheapest first.

* :mod:`~prunemip.encoders.bounds.interval` — :class:`NeuronBounds` and interval arithmetic;
* :mod:`~prunemip.encoders.bounds.linear` — linear relaxation (CROWN/DeepPoly, α-CROWN);
* :mod:`~prunemip.encoders.ideal_cuts` — ideal-formulation cuts for the LP stage;
* :mod:`~prunemip.encoders.bounds.witnesses` — the floor: neurons inputs prove unstable.

The LP and MIP tightening stages and the ``compute_bounds`` pipeline that runs them all
live in :mod:`prunemip.solvers` (they need HiGHS).
"""

from prunemip.encoders.bounds.interval import NeuronBounds, interval_bounds
from prunemip.rounding import gamma

__all__ = ["NeuronBounds", "gamma", "interval_bounds"]
