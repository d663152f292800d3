"""Linear-relaxation bounds by backward substitution (CROWN / DeepPoly), sound in float64.

For a target layer ``k`` and a coefficient matrix ``C``, an upper bound of ``C ẑ_k`` over
the input region is found by walking the network backwards (Zhang et al., "Efficient
Neural Network Robustness Certification with General Activation Functions", NeurIPS 2018
— CROWN; Singh et al., "An Abstract Domain for Certifying Neural Networks", POPL 2019 —
DeepPoly): with ``ẑ_k ≤ Λ_m ẑ_m + c`` (``Λ_k = C``),

* through the affine map ``ẑ_m = W_m h_{m−1} + b_m``: ``G = Λ_m W_m``, ``c += Λ_m b_m``;
* through the ReLU ``h = ReLU(ẑ)`` with bounds ``l ≤ ẑ ≤ u`` (from earlier layers, already
  computed): the upper line ``h ≤ a ẑ + t`` (``a = u/(u − l)``, ``t = −a l``) where
  ``G ≥ 0`` and the lower line ``h ≥ α ẑ`` where ``G < 0`` — valid for every
  ``α ∈ [0, 1]``; by default ``α ∈ {0, 1}``, 1 when ``u > −l`` (the area-minimising
  choice of both papers), or per row as optimised below; stable neurons are exact
  (``h = ẑ`` or ``h = 0``); so ``Λ_{m−1} = G⁺ diag(a) + G⁻ diag(α)``, ``c += G⁺ t``;
* at the input, ``max_x Λ_0 x + c`` over the region, exactly: the region's support function
  (:meth:`InputRegion.support <prunemip.regions.InputRegion.support>`): a box (L∞ ball ∩
  input box) gives ``Λ⁺ hi + Λ⁻ lo``; an L1 ball ∩ box ``{x0 + d : ‖d‖₁ ≤ δ, lo ≤ x0 + d ≤ hi}``
  gives, for any ``λ ≥ 0`` (Lagrangian duality of the budget row),
  ``Λ x0 + λ δ + Σ_i cap_i · max(|Λ_i| − λ, 0)`` with ``cap_i`` the room towards the sign of
  ``Λ_i``; the greedy (fractional-knapsack) threshold ``λ`` makes it the exact maximum,
  far below the box bound when δ is large.

Lower bounds are upper bounds of ``−ẑ_k`` (rows ``[I; −I]`` in one pass). Every layer's
bounds are intersected with the interval bounds (and any other sound bounds given), so
they are never looser than interval arithmetic, and feed the relaxations of the next
layers.

Optimised lower slopes (α-CROWN; Xu et al., "Fast and Complete: Enabling Complete Neural
Network Verification with Rapid and Massively Parallel Incomplete Verifiers", ICLR 2021):
the bound of each row is a function of the lower slopes ``α ∈ [0, 1]`` of the unstable
ReLUs of the layers below, convex for one ReLU layer below. :func:`alpha_bounds` gives
every row ``[e_j; −e_j]`` of an unstable neuron its own slopes, found by a few projected
Adam steps in torch (float64, autograd) over the already tightened bounds of the earlier
layers, then recomputes the bound rigorously here and intersects it with the previous
one (its tightness and cost against CROWN and LP tightening: ``experiments/benchmarks/README.md``,
bound quality).

Soundness in floating point. The argument never needs the computed ``Λ`` to be the
exact one: each step keeps the invariant "``ẑ_k ≤ Λ̃_m ẑ_m + c̃ + s`` holds exactly for
the float matrix ``Λ̃_m`` actually computed", with ``s`` a rigorous slack. Replacing
``Λ̃_m W_m`` by its float product ``G̃`` errs by at most ``γ_n |Λ̃_m||W_m|`` per entry
(Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1), which moves the value
by at most ``γ_n |Λ̃_m| (|W_m| h_max)`` with ``h_max`` from the sound bounds of ``h``; the
relaxation lines use the float slope ``ã`` with an intercept ``t̃`` recomputed (and
rounded up) so that the line lies above the ReLU on ``[l, u]`` for that ``ã``, and the
float lower slope ``α̃ ∈ [0, 1]`` as it is (``α̃ ẑ ≤ ReLU(ẑ)`` for every real ``ẑ``, so any
float slope, e.g. an optimised one, is exact for its own line); the products with ``ã``
and ``α̃`` are each rounded once (one of the two is 0 per entry, so their sum is exact);
each elementwise product, bias product and sum adds its own ``γ``-term. The sum of these
terms, doubled, plus the relative tolerance of :mod:`interval bounds
<prunemip.encoders.bounds.interval>` widens every bound outward.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from prunemip.encoders.bounds.interval import RELATIVE_TOLERANCE, NeuronBounds, interval_bounds
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.rounding import UNIT_ROUNDOFF, gamma, round_up_nonnegative

if TYPE_CHECKING:
    import torch

#: A relaxation of one layer's activation: (upper slope, upper intercept, lower slope), or None for identity.
Relaxation = tuple[np.ndarray, np.ndarray, np.ndarray] | None
#: α-CROWN: Adam steps on the lower slopes per bounded layer, and their step size.
ALPHA_ITERATIONS = 10
ALPHA_LEARNING_RATE = 0.3
#: α-CROWN memory guards: values of ``Λ`` per chunk of rows, and the largest network (dense weights).
ALPHA_CHUNK_ENTRIES = 4_000_000
ALPHA_MAX_WEIGHTS = 25_000_000


def relu_relaxation(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes and intercepts of valid lines ``α ẑ ≤ ReLU(ẑ) ≤ a ẑ + t`` on ``[lower, upper]``.

    Stably active: ``a = α = 1, t = 0``; stably inactive: all 0; unstable: the chord of
    the ReLU (``a = u/(u − l)``, ``t`` rounded up so that the float line stays above both
    end points) and ``α = 1`` if ``u > −l`` else 0.

    Args:
        lower: sound lower bounds of the pre-activations.
        upper: sound upper bounds.

    Returns:
        The upper slopes ``a``, upper intercepts ``t`` and lower slopes ``α``, per neuron.
    """
    active = lower >= 0.0
    unstable = (lower < 0.0) & (upper > 0.0)
    slope_up = active.astype(np.float64)
    slope_low = active.astype(np.float64)
    intercept = np.zeros_like(lower)
    if unstable.any():
        lo, hi = lower[unstable], upper[unstable]
        slope = hi / (hi - lo)
        slope = np.minimum(slope, 1.0)
        # The line a·ẑ + t lies above the (convex) ReLU on [l, u] iff it does at both ends:
        # a·l + t ≥ 0 and a·u + t ≥ u.
        intercept[unstable] = round_up_nonnegative(np.maximum(-slope * lo, hi * (1.0 - slope)))
        slope_up[unstable] = slope
        slope_low[unstable] = (hi > -lo).astype(np.float64)
    return slope_up, intercept, slope_low


def _relaxation(activation: str, lower: np.ndarray, upper: np.ndarray) -> Relaxation:
    return relu_relaxation(lower, upper) if activation == "relu" else None


def _post_magnitude(activation: str, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``max |h|`` of a layer's output given sound pre-activation bounds."""
    if activation == "relu":
        return np.maximum(upper, 0.0)
    return np.maximum(np.abs(lower), np.abs(upper))


class BackwardBound(NamedTuple):
    """:func:`backward_bound`'s result: the bound and the backward coefficients behind it."""

    upper: np.ndarray  #: per row, a sound upper bound of ``max_x C ẑ_layer`` over the region
    #: per layer ``m ≤ layer``, ``G_m = Λ_m W_m``: the rows' coefficients of ``h_{m−1}`` (of ``x`` for
    #: ``m = 0``; its maximiser over the region attains the bound's linear part)
    coefficients: tuple[np.ndarray, ...]


def linear_upper_bound(
    network: Network,
    region: InputRegion,
    layer: int,
    coefficients: np.ndarray,
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    lower_slopes: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """A sound upper bound of every row of ``coefficients @ ẑ_layer`` over the region.

    :func:`backward_bound`'s bound (see there).

    Args:
        network: the network.
        region: the input region.
        layer: the layer whose pre-activations ``ẑ_layer`` are bounded.
        coefficients: the rows ``C``, shape ``(m, n_layer)``.
        lower: sound lower bounds per layer (at least up to ``layer − 1``).
        upper: sound upper bounds likewise.
        lower_slopes: optional lower slopes per layer (α-CROWN).

    Returns:
        Per row, a float upper bound of ``max_x C ẑ_layer`` over the region.
    """
    return backward_bound(network, region, layer, coefficients, lower, upper, lower_slopes).upper


def backward_bound(
    network: Network,
    region: InputRegion,
    layer: int,
    coefficients: np.ndarray,
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    lower_slopes: Sequence[np.ndarray | None] | None = None,
    split_terms: Sequence[np.ndarray | None] | None = None,
) -> BackwardBound:
    """A sound upper bound of every row of ``coefficients @ ẑ_layer`` over the region, with
    the backward coefficients ``G_m`` of every layer (what branching heuristics score and
    whose input row's maximiser is the bound's concretisation point).

    ``lower``/``upper`` are sound pre-activation bounds of (at least) layers ``0 … layer−1``;
    they define the ReLU relaxations. ``lower_slopes[m]`` (optional, shape ``(n_m,)`` or one
    row per coefficient row) replaces the lower slopes ``α`` of layer ``m``'s unstable
    ReLUs, clipped to ``[0, 1]``; stable neurons keep their exact lines.

    ``split_terms[m]`` (optional, shape ``(n_m,)`` or one row per coefficient row, ``m <
    layer``) is added to ``Λ_m``, the rows' coefficients of ``ẑ_m``: β-CROWN's Lagrangian
    terms ``β_j s_j ẑ_j`` (``β_j ≥ 0``) of splits ``s_j ẑ_j ≥ 0`` (Wang et al., "Beta-CROWN:
    Efficient Bound Propagation with Per-neuron Split Constraints for Neural Network
    Robustness Verification", NeurIPS 2021). Such a term only raises the bounded function
    on the points where it is ``≥ 0``, so the bound then holds over the points of the
    region where every term is ``≥ 0`` (and where ``lower``/``upper`` hold); the float sum
    adds ``u |Λ_m| max|ẑ_m|`` to the slack.

    A batch of ``B`` subdomains of one region is bounded in one call: ``lower[m]``/``upper[m]``
    of shape ``(B, n_m)``, and ``coefficients``, ``lower_slopes[m]``, ``split_terms[m]`` with a
    leading ``B`` axis (``(B, rows, n)``) or without one (shared by the batch). Each entry of
    the result is the one subdomain's bound, with the same error terms: every dot product
    of ``n`` terms is covered by ``γ_n`` whatever order it is summed in.

    Args:
        network: the network.
        region: the input region.
        layer: the layer whose pre-activations ``ẑ_layer`` are bounded.
        coefficients: the rows ``C``, shape ``(m, n_layer)`` (or ``(B, m, n_layer)``).
        lower: sound lower bounds per layer (at least up to ``layer − 1``).
        upper: sound upper bounds likewise.
        lower_slopes: optional lower slopes per layer (α-CROWN).
        split_terms: optional terms added to the coefficients of each layer (β-CROWN).

    Returns:
        Per row, a float upper bound of ``max_x C ẑ_layer`` over the region, and the ``G_m``:
        shapes ``(m,)`` and ``(m, n)``, or ``(B, m)`` and ``(B, m, n)`` for a batch.
    """
    layers = network.layers
    batched = len(lower) > 0 and np.ndim(lower[0]) == 2
    batch = lower[0].shape[0] if batched else 1
    lower = [np.atleast_2d(v) for v in lower[:layer]]  # (B, n), B = 1 unless batched
    upper = [np.atleast_2d(v) for v in upper[:layer]]
    C = np.asarray(coefficients, dtype=np.float64)
    if C.ndim < 3:
        C = np.atleast_2d(C)[None]
    C = np.broadcast_to(C, (batch, *C.shape[1:]))
    if C.shape[2] != layers[layer].n_out:
        raise ValueError(f"coefficients have {C.shape[2]} columns, layer {layer} has {layers[layer].n_out}")
    rows = C.shape[1]
    Lam = C
    const = np.zeros((batch, rows))
    slack = np.zeros((batch, rows))
    x_magnitude = np.maximum(np.abs(region.lower), np.abs(region.upper))
    G = Lam
    backward: list[np.ndarray] = [Lam] * (layer + 1)
    for m in range(layer, -1, -1):
        weight, bias = layers[m].weight, layers[m].bias
        n_m = weight.shape[0]
        if split_terms is not None and m < layer and split_terms[m] is not None:
            Lam = Lam + _per_row(split_terms[m])
            slack += UNIT_ROUNDOFF * _dot(np.abs(Lam), np.maximum(np.abs(lower[m]), np.abs(upper[m])))
        abs_lam = np.abs(Lam)
        slack += gamma(n_m + 1) * (np.abs(const) + abs_lam @ np.abs(bias))
        const = const + Lam @ bias
        flat = Lam.reshape(batch * rows, n_m)
        G = np.asarray((weight.T @ flat.T).T) if n_m else np.zeros((batch * rows, weight.shape[1]))
        G = G.reshape(batch, rows, weight.shape[1])
        backward[m] = G
        if m > 0:
            h_max = _post_magnitude(layers[m - 1].activation, lower[m - 1], upper[m - 1])
        else:
            h_max = x_magnitude[None, :]
        slack += gamma(n_m + 1) * _dot(abs_lam, np.asarray(layers[m].abs_weight @ h_max.T).T)
        if m == 0:
            break
        relaxation = _relaxation(layers[m - 1].activation, lower[m - 1], upper[m - 1])
        if relaxation is None:
            Lam = G
            continue
        slope_up, intercept, slope_low = (v[:, None, :] for v in relaxation)
        if lower_slopes is not None and lower_slopes[m - 1] is not None:
            unstable = ((lower[m - 1] < 0.0) & (upper[m - 1] > 0.0))[:, None, :]
            slope_low = np.where(unstable, np.clip(_per_row(lower_slopes[m - 1]), 0.0, 1.0), slope_low)
        positive = np.maximum(G, 0.0)
        Lam = positive * slope_up + np.minimum(G, 0.0) * slope_low
        added = (positive * intercept).sum(axis=2)
        z_max = np.maximum(np.abs(lower[m - 1]), np.abs(upper[m - 1]))
        slack += gamma(G.shape[2] + 1) * (np.abs(const) + added)
        slack += 2.0 * UNIT_ROUNDOFF * _dot(np.abs(Lam), z_max)
        const = const + added
    value, magnitude, terms = region.support(G.reshape(batch * rows, -1))
    value, magnitude = value.reshape(batch, rows), magnitude.reshape(batch, rows)
    total = const + value
    slack += gamma(terms) * magnitude + gamma(2) * (np.abs(const) + np.abs(value))
    bound = total + 2.0 * slack + RELATIVE_TOLERANCE * np.abs(total)
    if batched:
        return BackwardBound(bound, tuple(backward))
    return BackwardBound(bound[0], tuple(g[0] for g in backward))


def _per_row(values: np.ndarray) -> np.ndarray:
    """A layer's parameters, shared ``(n,)``, per row ``(rows, n)`` or per subdomain and row
    ``(B, rows, n)``, as a 3-axis array that broadcasts against ``(B, rows, n)``."""
    values = np.asarray(values)
    return values.reshape((1,) * (3 - values.ndim) + values.shape)


def _dot(matrix: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``matrix[b] @ vectors[b]`` for each subdomain ``b``: ``(B, rows, n)`` by ``(B, n)``."""
    return np.einsum("brn,bn->br", matrix, np.broadcast_to(vectors, (matrix.shape[0], matrix.shape[2])))


def output_upper_bounds(
    network: Network, region: InputRegion, bounds: NeuronBounds, coefficients: np.ndarray
) -> np.ndarray | None:
    """Sound upper bounds of each row of ``coefficients @ y`` (``y`` the outputs) by the
    linear relaxation of ``bounds``, ``+inf`` where they overflow; ``None`` when the output
    layer is not an identity layer (then only per-output bounds apply).

    Args:
        network: the network.
        region: the input region.
        bounds: sound neuron bounds over ``region`` (their relaxation is used).
        coefficients: the output combinations, shape ``(rows, n_outputs)``.

    Returns:
        The upper bounds, shape ``(rows,)``, or ``None``.
    """
    last = len(network.layers) - 1
    if network.layers[last].activation != "identity":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        upper = linear_upper_bound(network, region, last, coefficients, bounds.lower, bounds.upper)
    return np.where(np.isfinite(upper), upper, np.inf)


def linear_bounds(
    network: Network,
    region: InputRegion,
    base: NeuronBounds | None = None,
    *,
    start_layer: int = 0,
) -> NeuronBounds:
    """CROWN/DeepPoly bounds of every layer, intersected with ``base`` (default: interval bounds).

    Layers before ``start_layer`` keep ``base``'s bounds (used after LP tightening of the
    earlier layers, to propagate it cheaply to the later ones).

    Args:
        network: the network.
        region: the input region (as many inputs as the network).
        base: sound bounds to intersect with (default: :func:`interval_bounds`).
        start_layer: the first layer to recompute.

    Returns:
        The bounds, with a ``linear`` stage appended to ``base``'s.

    Raises:
        PrunemipError: for a region of the wrong size.
    """
    start = time.perf_counter()
    if region.size != network.n_inputs:
        raise PrunemipError(
            f"the input region has {region.size} inputs but the network takes {network.n_inputs}"
        )
    if base is None:
        base = interval_bounds(network, region)
    lows = list(base.lower[:start_layer])
    highs = list(base.upper[:start_layer])
    for k in range(start_layer, len(network.layers)):
        n_k = network.layers[k].n_out
        if n_k == 0:
            lows.append(base.lower[k].copy())
            highs.append(base.upper[k].copy())
            continue
        eye = np.eye(n_k)
        with np.errstate(over="ignore", invalid="ignore"):
            both = linear_upper_bound(network, region, k, np.vstack([eye, -eye]), lows, highs)
        upper, lower = both[:n_k], -both[n_k:]
        finite = np.isfinite(lower) & np.isfinite(upper)
        lower = np.where(finite, np.maximum(lower, base.lower[k]), base.lower[k])
        upper = np.where(finite, np.minimum(upper, base.upper[k]), base.upper[k])
        lows.append(lower)
        highs.append(upper)
    return base.tightened(lows, highs, "linear", time.perf_counter() - start)


# ----------------------------------------------------------------------- α-CROWN
def _optimised_slopes(
    weights: Sequence[torch.Tensor],
    network: Network,
    region: InputRegion,
    layer: int,
    coefficients: np.ndarray,
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    iterations: int,
) -> list[np.ndarray | None]:
    """Per-row lower slopes of layers ``0 … layer−1`` that minimise the bound of each row.

    The backward substitution of :func:`linear_upper_bound` (without its slack) is a
    function of the slopes ``α`` of the unstable ReLUs; Adam (Kingma & Ba, ICLR 2015)
    descends on the sum of the rows' bounds — rows do not share slopes, so each row's
    own bound is minimised — from the adaptive slopes, projecting ``α`` onto ``[0, 1]``
    after each step. Each row's slopes of its best value seen are returned (the first
    value is plain CROWN's). These float values need not be exact:
    :func:`linear_upper_bound` re-evaluates the slopes rigorously.
    """
    import torch

    layers = network.layers
    rows = coefficients.shape[0]
    relaxations = {
        m: r for m in range(layer) if (r := _relaxation(layers[m].activation, lower[m], upper[m])) is not None
    }
    unstable = {m: np.flatnonzero((lower[m] < 0.0) & (upper[m] > 0.0)) for m in relaxations}
    slopes: list[np.ndarray | None] = [None] * layer
    alpha = {
        m: torch.tensor(np.tile(relaxations[m][2][neurons], (rows, 1)), requires_grad=True)
        for m, neurons in unstable.items()
        if neurons.size
    }
    if not alpha:
        return slopes
    lines = {m: tuple(torch.from_numpy(v) for v in r) for m, r in relaxations.items()}
    positions = {m: torch.from_numpy(unstable[m]) for m in alpha}
    biases = [torch.from_numpy(layers[m].bias) for m in range(layer + 1)]

    def bound() -> torch.Tensor:
        Lam = torch.from_numpy(coefficients)
        const = torch.zeros(rows, dtype=torch.float64)
        for m in range(layer, 0, -1):
            const = const + Lam @ biases[m]
            G = Lam @ weights[m]
            if m - 1 not in lines:
                Lam = G
                continue
            slope_up, intercept, slope_low = lines[m - 1]
            if m - 1 in alpha:
                slope_low = slope_low.expand(rows, -1).index_copy(1, positions[m - 1], alpha[m - 1])
            positive = G.clamp(min=0.0)
            Lam = positive * slope_up + G.clamp(max=0.0) * slope_low
            const = const + positive @ intercept
        return const + Lam @ biases[0] + region.support_torch(Lam @ weights[0])

    best = minimise_bound(bound, alpha, dict.fromkeys(alpha, ALPHA_LEARNING_RATE), iterations)
    for m in alpha:
        full = np.tile(relaxations[m][2], (rows, 1))
        full[:, unstable[m]] = best[m].numpy()
        slopes[m] = full
    return slopes


def minimise_bound(
    bound: Callable[[], torch.Tensor],
    params: Mapping[Hashable, torch.Tensor],
    rates: Mapping[Hashable, float],
    iterations: int,
    nonnegative: Collection[Hashable] = (),
) -> dict[Hashable, torch.Tensor]:
    """Projected Adam (Kingma & Ba, ICLR 2015) on the sum of ``bound()``'s values.

    Each parameter tensor's leading dimensions are those of ``bound()``'s value (one value per
    row, no parameter shared between rows, so the sum minimises every row on its own). After
    each step a parameter is projected onto ``[0, 1]`` (lower slopes), or onto ``≥ 0`` for the
    keys in ``nonnegative`` (Lagrange multipliers).

    Args:
        bound: the values to minimise, differentiable in ``params``.
        params: the parameters, by key (leaf tensors that require gradients).
        rates: the step size of each key.
        iterations: Adam steps.
        nonnegative: the keys projected onto ``≥ 0`` rather than ``[0, 1]``.

    Returns:
        Per key, each row's parameters at its lowest value seen (the first value is the
        starting parameters').
    """
    import torch

    beta1, beta2, eps = 0.9, 0.999, 1e-8
    moments = {key: (torch.zeros_like(p), torch.zeros_like(p)) for key, p in params.items()}
    best = {key: p.detach().clone() for key, p in params.items()}
    best_value = None
    for step in range(iterations + 1):
        value = bound()
        with torch.no_grad():
            if best_value is None:
                best_value = torch.full_like(value, math.inf)
            better = value < best_value
            best_value = torch.where(better, value, best_value)
            for key, p in params.items():
                best[key][better] = p[better]
        if step == iterations:
            break
        grads = torch.autograd.grad(value.sum(), list(params.values()))
        with torch.no_grad():
            for (key, p), grad in zip(params.items(), grads, strict=True):
                first, second = moments[key]
                first.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                second.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denominator = (second / (1.0 - beta2 ** (step + 1))).sqrt_().add_(eps)
                p.addcdiv_(first, denominator, value=-rates[key] / (1.0 - beta1 ** (step + 1)))
                p.clamp_(min=0.0) if key in nonnegative else p.clamp_(0.0, 1.0)
    return best


def alpha_bounds(
    network: Network, region: InputRegion, base: NeuronBounds, *, iterations: int = ALPHA_ITERATIONS
) -> NeuronBounds:
    """``base`` tightened by optimised lower slopes (α-CROWN), layer by layer.

    For every ReLU layer ``k ≥ 1``, the rows ``[I; −I]`` of its unstable neurons get their
    own slopes from :func:`_optimised_slopes` over the current bounds of layers ``< k``
    (already tightened), in chunks of rows of at most ``ALPHA_CHUNK_ENTRIES`` values of
    ``Λ``; the bound is then :func:`linear_upper_bound` with those slopes, intersected with
    ``base`` (so never looser). A network with more than ``ALPHA_MAX_WEIGHTS`` weights
    (dense count: the optimisation uses dense matrices) keeps ``base``. The first call in a
    process also imports torch, which the stage's time counts.

    Args:
        network: the network.
        region: the input region.
        base: sound bounds to tighten (usually linear ones).
        iterations: gradient steps of the slope optimisation per chunk of rows.

    Returns:
        The bounds, with an ``alpha`` stage appended (``skipped`` when the network is too large).
    """
    import torch

    start = time.perf_counter()
    layers = network.layers
    lows, highs = [b.copy() for b in base.lower], [b.copy() for b in base.upper]
    skipped = sum(layer.n_out * layer.n_in for layer in layers) > ALPHA_MAX_WEIGHTS
    weights = [] if skipped else [torch.from_numpy(layer.weight.toarray()) for layer in layers]
    for k in range(1, 0 if skipped else len(layers)):
        neurons = np.flatnonzero((lows[k] < 0.0) & (highs[k] > 0.0))
        if layers[k].activation != "relu" or neurons.size == 0:
            continue
        eye = np.eye(layers[k].n_out)[neurons]
        coefficients = np.vstack([eye, -eye])
        chunk = max(
            1, ALPHA_CHUNK_ENTRIES // (network.n_inputs + sum(layer.n_out for layer in layers[: k + 1]))
        )
        for rows in np.array_split(np.arange(2 * neurons.size), -(-2 * neurons.size // chunk)):
            C = coefficients[rows]
            slopes = _optimised_slopes(weights, network, region, k, C, lows, highs, iterations)
            with np.errstate(over="ignore", invalid="ignore"):
                value = linear_upper_bound(network, region, k, C, lows, highs, slopes)
            usable = np.isfinite(value)
            upper_side = rows < neurons.size
            up, low = neurons[rows[upper_side & usable]], neurons[rows[~upper_side & usable] - neurons.size]
            highs[k][up] = np.minimum(highs[k][up], value[upper_side & usable])
            lows[k][low] = np.maximum(lows[k][low], -value[~upper_side & usable])
    details = {"skipped": "network too large"} if skipped else {}
    return base.tightened(lows, highs, "alpha", time.perf_counter() - start, **details)
