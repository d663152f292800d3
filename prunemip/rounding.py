"""Rigorous float64 rounding-error bounds, the ones every sound bound in prunemip is widened by.

Higham, *Accuracy and Stability of Numerical Algorithms* (2nd ed., SIAM 2002), §3.1: with
unit roundoff ``u = 2⁻⁵³``, an ``n``-term float64 dot product is within ``γ_n·Σ|a_i b_i|`` of
the exact one, ``γ_n = n·u/(1 − n·u)``.
"""

from __future__ import annotations

import numpy as np

#: Higham's unit roundoff ``u`` of float64.
UNIT_ROUNDOFF = 2.0**-53


def gamma(n: np.ndarray | int) -> np.ndarray:
    """Higham's ``γ_n = n·u/(1 − n·u)``: the relative error bound of an ``n``-term float64 dot product.

    Args:
        n: the number of terms (a count, or an array of counts).

    Returns:
        ``γ_n`` for each count.
    """
    count = np.asarray(n, dtype=np.float64)
    return count * UNIT_ROUNDOFF / (1.0 - count * UNIT_ROUNDOFF)


def round_up_nonnegative(values: np.ndarray) -> np.ndarray:
    """A float ≥ the exact value of a non-negative quantity computed with a few roundings.

    Args:
        values: float64 results of a few roundings each, of exact values ``≥ 0``.

    Returns:
        ``values·(1 + 4u)`` rounded up to the next float.
    """
    return np.nextafter(values * (1.0 + 4.0 * UNIT_ROUNDOFF), np.inf)
