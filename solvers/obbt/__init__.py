"""Optimisation-based bound tightening (OBBT) with HiGHS: the LP and MIP stages of the bounds pipeline.

* :mod:`~prunemip.solvers.obbt.common` — :class:`ObbtOptions`, the truncated network, the
  layer loop both stages run;
* :mod:`~prunemip.solvers.obbt.lp` — LP-based tightening and its Neumaier–Shcherbina safe bound;
* :mod:`~prunemip.solvers.obbt.mip` — MIP-based tightening: stability MIPs, then width MIPs.

The pipeline that runs them after the cheaper methods, ``compute_bounds``, is
:mod:`prunemip.solvers.bounds`. The names this module held before it became a package are
forwarded to their new modules for one release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

from prunemip._deprecated import moved_to

#: Old name → the module it moved to. Only these are forwarded: the package's own submodules
#: (``lp``, ``mip``, ``common``) must not reach the forwarding, which would import the pipeline.
_MOVED: dict[str, str] = {
    **dict.fromkeys(
        (
            "compute_bounds",
            "continue_bounds",
            "lp_pays",
            "auto_lp_budget",
            "AUTO_LP_MIN_UNSTABLE",
            "AUTO_LP_BUDGET_FRACTION",
            "AUTO_LP_MAX_BUDGET",
            "ObbtOptions",
        ),
        "prunemip.solvers.bounds",
    ),
    **dict.fromkeys(("BOUNDS_METHODS", "DEFAULT_BOUNDS"), "prunemip.solvers.methods"),
    **dict.fromkeys(("LP_FORMULATION", "truncated_network"), "prunemip.solvers.obbt.common"),
    **dict.fromkeys(("lp_tighten", "safe_lower_bound"), "prunemip.solvers.obbt.lp"),
    "mip_tighten": "prunemip.solvers.obbt.mip",
}


__getattr__ = moved_to(_MOVED, __name__)
