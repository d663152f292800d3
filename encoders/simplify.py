"""Exact simplification of a network over an input region, given sound neuron bounds.

Over the region (Serra, Kumar & Ramalingam, "Lossless Compression of Deep Neural
Networks", CPAIOR 2020):

* a stably inactive ReLU (``u ≤ 0``) outputs exactly 0: it is removed with its outgoing
  column (adding ``w·0`` is exact, so the forward pass is unchanged bit for bit);
* a neuron with no incoming weight from a remaining neuron is a constant ``act(b)``: it is
  removed and ``w·act(b)`` is folded into the next layer's bias;
* a neuron with no path to the outputs is removed (it cannot affect them).

The outputs are unchanged on every input of the region, exactly where nothing is folded;
folding a constant into a bias rounds once, so :class:`Simplification` carries, per kept
neuron, a rigorous bound ``error`` on ``|ẑ_simplified − ẑ_original|`` (exact arithmetic on
each network's float data; ``γ_n`` rounding terms as in :mod:`~prunemip.encoders.bounds.interval`,
propagated through the 1-Lipschitz activations). ``restrict``/``expand`` move bounds
between the two networks, widened by it, so bounds computed on either stay sound for both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.errors import PrunemipError
from prunemip.network import Layer, Network
from prunemip.rounding import gamma


@dataclass(frozen=True, eq=False)
class Simplification:
    """A simplified network and its map back to the original's neurons."""

    network: Network
    kept: tuple[np.ndarray, ...]  #: original indices of the kept neurons, per layer
    error: tuple[np.ndarray, ...]  #: per kept neuron, a bound on |ẑ_simplified − ẑ_original|
    removed: dict[str, int]  #: counts: inactive, constant, dead

    def restrict(self, bounds: NeuronBounds) -> NeuronBounds:
        """Sound bounds of the simplified network from sound bounds of the original.

        Args:
            bounds: bounds of the original network.

        Returns:
            Their kept neurons' bounds, widened by ``error``.
        """
        lows = tuple(lo[k] - e for lo, k, e in zip(bounds.lower, self.kept, self.error, strict=True))
        highs = tuple(hi[k] + e for hi, k, e in zip(bounds.upper, self.kept, self.error, strict=True))
        return replace(bounds, lower=lows, upper=highs)

    def expand(self, simplified: NeuronBounds, original: NeuronBounds) -> NeuronBounds:
        """``original`` intersected with the simplified network's bounds (widened back).

        Args:
            simplified: bounds of the simplified network (their stages become the result's).
            original: bounds of the original network.

        Returns:
            Bounds of the original network, never looser than ``original``.
        """
        lows, highs = [], []
        for k, (index, error) in enumerate(zip(self.kept, self.error, strict=True)):
            lo, hi = original.lower[k].copy(), original.upper[k].copy()
            lo[index] = np.maximum(lo[index], simplified.lower[k] - error)
            hi[index] = np.minimum(hi[index], simplified.upper[k] + error)
            lows.append(lo)
            highs.append(hi)
        return replace(
            original,
            lower=tuple(lows),
            upper=tuple(highs),
            method=simplified.method,
            seconds=simplified.seconds,
            stages=simplified.stages,
        )


def simplify_network(network: Network, bounds: NeuronBounds) -> Simplification:
    """Remove stably inactive, constant and dead neurons (see the module docstring).

    Args:
        network: the network.
        bounds: sound neuron bounds of ``network`` over the region.

    Returns:
        The simplified network, the kept neurons' original indices, error bounds and removal counts.

    Raises:
        PrunemipError: when the bounds do not match the network's layer sizes.
    """
    if len(bounds.lower) != len(network.layers) or any(
        lo.shape != (layer.n_out,) for lo, layer in zip(bounds.lower, network.layers, strict=True)
    ):
        raise PrunemipError("the neuron bounds do not match the network's layer sizes")
    last = len(network.layers) - 1
    kept_prev = np.arange(network.n_inputs)
    error_prev = np.zeros(network.n_inputs)
    const_index = np.zeros(0, dtype=np.int64)  # previous layer's constant neurons (original indices)
    const_value = np.zeros(0)
    const_error = np.zeros(0)
    counts = {"inactive": 0, "constant": 0, "dead": 0}
    weights, biases, kept_per_layer, errors = [], [], [], []
    for k, layer in enumerate(network.layers):
        matrix = layer.weight.tocsc()
        from_kept = matrix[:, kept_prev].tocsr()
        from_kept.eliminate_zeros()
        from_const = matrix[:, const_index].tocsr()
        from_const.eliminate_zeros()
        bias = layer.bias.copy()
        error = np.zeros(layer.n_out)
        if from_const.nnz:
            abs_const = abs(from_const)
            terms = np.diff(from_const.indptr) + 1
            bias = layer.bias + from_const @ const_value
            touched = np.diff(from_const.indptr) > 0
            error += np.where(
                touched, gamma(terms) * (np.abs(layer.bias) + abs_const @ np.abs(const_value)), 0.0
            )
            error += abs_const @ const_error
        if from_kept.nnz:
            error += abs(from_kept) @ error_prev
        has_input = np.diff(from_kept.indptr) > 0
        keep = np.ones(layer.n_out, dtype=bool)
        constant = np.zeros(layer.n_out, dtype=bool)
        if k < last:
            constant = ~has_input
            stably_off = bounds.upper[k] <= 0.0 if layer.activation == "relu" else np.zeros(layer.n_out, bool)
            inactive = has_input & stably_off
            keep = has_input & ~inactive
            counts["inactive"] += int(np.count_nonzero(inactive))
            counts["constant"] += int(np.count_nonzero(constant))
        index = np.flatnonzero(keep)
        weights.append(from_kept[index])
        biases.append(bias[index])
        kept_per_layer.append(index)
        errors.append(error[index])
        # Constants to fold into the next layer: those that are not exactly 0.
        values = layer.activate(bias)
        constant &= (values != 0.0) | (error != 0.0)
        const_index = np.flatnonzero(constant)
        const_value = values[const_index]
        const_error = error[const_index]
        kept_prev, error_prev = index, error[index]
    # Backward: drop neurons with no path to the outputs.
    for k in range(last - 1, -1, -1):
        used = np.diff(weights[k + 1].tocsc().indptr) > 0
        if used.all():
            continue
        counts["dead"] += int(np.count_nonzero(~used))
        weights[k] = weights[k][np.flatnonzero(used)]
        biases[k] = biases[k][used]
        kept_per_layer[k] = kept_per_layer[k][used]
        errors[k] = errors[k][used]
        weights[k + 1] = weights[k + 1].tocsc()[:, np.flatnonzero(used)].tocsr()
    layers = tuple(
        Layer.create(sp.csr_matrix(w), b, layer.activation)
        for w, b, layer in zip(weights, biases, network.layers, strict=True)
    )
    simplified = Network(layers, network.input_spec, dict(network.metadata))
    return Simplification(simplified, tuple(kept_per_layer), tuple(errors), counts)


def simplify(network: Network, bounds: NeuronBounds) -> Network:
    """The network without stably inactive, constant and dead neurons; same outputs on the region.

    Args:
        network: the network.
        bounds: sound neuron bounds of ``network`` over the region.

    Returns:
        The simplified network (see :func:`simplify_network` for its map back).

    Raises:
        PrunemipError: when the bounds do not match the network's layer sizes.
    """
    return simplify_network(network, bounds).network
