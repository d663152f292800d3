"""The MIP-cost proxy: what a network's adversarial MIPs will cost, read from its bounds alone.

The big-M MIP of a ReLU network over an input ball (design §3) has one binary per unstable
neuron (``l_j < 0 < u_j``), big-M rows as wide as ``u_j − l_j``, and one matrix entry per
nonzero weight. The proxy measures these on a few validation points: for each point ``x``
and each ball ``B`` (the attack's L∞ ε and L1 δ balls, intersected with the input box), the
linear-relaxation bounds (CROWN/DeepPoly by backward substitution; Zhang et al., NeurIPS
2018; Singh et al., POPL 2019) over ``B(x)`` give

    U(x, B) = #{j : l_j < 0 < u_j},     W(x, B) = Σ_{j unstable} (u_j − l_j),

and the features are their means ``Ū`` and ``W̄`` over points and balls, with ``nnz`` the
nonzero weights. The forms (:data:`PROXY_FORMS`):

* ``unstable``: ``Ū``, the binaries;
* ``bigm``: ``W̄``, the total big-M width of the binaries;
* ``unstable+nnz``: ``Ū + nnz / n_in``, a first-layer row of nonzeros weighed like one binary.

Which form ranks networks by solve time is measured, not assumed:
:mod:`prunemip.study.calibration` solves decide-mode MIPs for a handful of networks and ranks
each form against the measured times by Spearman's rank correlation; :data:`DEFAULT_PROXY`
is the form that ranked best there (figures in ``experiments/benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import compute_bounds

#: A ball of the proxy (and of the attack): its norm (``"linf"`` or ``"l1"``) and radius.
Ball = tuple[str, float]
#: The balls of Cacciola et al.'s protocol, the study's default: L∞ ε = 0.05 and L1 δ = 5.
DEFAULT_BALLS: tuple[Ball, ...] = (("linf", 0.05), ("l1", 5.0))


@dataclass(frozen=True)
class CostFeatures:
    """What the proxy forms combine: mean unstable neurons and big-M width, nonzero weights."""

    unstable: float  #: Ū, mean unstable ReLU neurons per (point, ball)
    bigm_width: float  #: W̄, mean Σ(u − l) over the unstable neurons per (point, ball)
    nnz: int  #: nonzero weights
    n_inputs: int  #: the network's inputs (the scale of ``unstable+nnz``)

    def value(self, form: str) -> float:
        """The proxy of form ``form``.

        Args:
            form: a key of :data:`PROXY_FORMS`.

        Returns:
            The proxy's value (larger: a costlier MIP).

        Raises:
            PrunemipError: for an unknown form.
        """
        return proxy_form(form)(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Each proxy form: name → its value from the features.
PROXY_FORMS: dict[str, Callable[[CostFeatures], float]] = {
    "unstable": lambda f: f.unstable,
    "bigm": lambda f: f.bigm_width,
    "unstable+nnz": lambda f: f.unstable + f.nnz / f.n_inputs,
}
#: The form that ranked the calibration's networks best by measured solve time.
DEFAULT_PROXY = "unstable"


def proxy_form(form: str) -> Callable[[CostFeatures], float]:
    """The proxy form named ``form``.

    Args:
        form: a key of :data:`PROXY_FORMS`.

    Returns:
        Its function of the features.

    Raises:
        PrunemipError: for an unknown form (the message lists the forms).
    """
    try:
        return PROXY_FORMS[form]
    except KeyError:
        raise PrunemipError(
            f"unknown MIP-cost proxy {form!r}; choose one of {', '.join(PROXY_FORMS)}"
        ) from None


def cost_features(
    network: Network, points: np.ndarray, balls: Sequence[Ball] = DEFAULT_BALLS
) -> CostFeatures:
    """The proxy's features of ``network`` over ``balls`` around each of ``points``.

    Args:
        network: the network (its input spec's box bounds the balls).
        points: the centres, one flat input per row (validation images).
        balls: the balls, ``(norm, radius)``.

    Returns:
        The features: Ū and W̄ under the linear bounds, and the nonzero weights.

    Raises:
        PrunemipError: without points or balls, or for a point outside the input box.
    """
    centres = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if not len(centres) or not balls:
        raise PrunemipError("the MIP-cost proxy needs at least one point and one ball")
    spec = network.input_spec
    unstable, widths = [], []
    for x in centres:
        for norm, radius in balls:
            region = InputRegion.ball(norm, x, radius, spec.lower, spec.upper)
            bounds = compute_bounds(network, region, "linear")
            unstable.append(bounds.n_unstable)
            widths.append(bounds.total_unstable_width)
    return CostFeatures(float(np.mean(unstable)), float(np.mean(widths)), network.nnz, network.n_inputs)
