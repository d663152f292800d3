"""Data-free magnitude pruning of an exported :class:`Network` (no torch, no training).

Used to make a cheap surrogate of a given network (Pham et al., arXiv 2505.01985, 2025):
the ``sparsity`` fraction of the smallest-magnitude weights of the hidden layers,
ranked globally, is removed; the output layer stays dense unless asked, and no layer
loses all its weights. The ranking is the training path's global magnitude allocation
(:func:`prunemip.pruning.allocation.keep_highest` on |w|), here over the weights the
network stores.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from prunemip.errors import PrunemipError
from prunemip.network import Layer, Network
from prunemip.pruning.allocation import keep_highest


def magnitude_prune(network: Network, sparsity: float, include_output: bool = False) -> Network:
    """The network with the smallest-magnitude ``sparsity`` of its prunable weights removed.

    Args:
        network: the network to prune; its stored weights are the ones ranked.
        sparsity: the fraction of the prunable stored weights to remove, in [0, 1): the
            ``round((1 − sparsity)·N)`` largest |w| of all prunable layers together are kept.
        include_output: prune the output layer too (default: it stays dense).

    Returns:
        A new network with the same architecture and biases, the removed weights dropped
        from its sparse matrices and ``surrogate_sparsity`` recorded in its metadata.

    Raises:
        PrunemipError: if ``sparsity`` is outside [0, 1) or the network has no hidden layer
            to prune.
    """
    prunable = len(network.layers) if include_output else len(network.layers) - 1
    if prunable == 0:
        raise PrunemipError("the network has only its output layer; nothing to prune")
    magnitudes = [np.abs(layer.weight.data) for layer in network.layers[:prunable]]
    kept = keep_highest(magnitudes, sparsity, "global")
    pruned = [_keep_entries(layer, keep) for layer, keep in zip(network.layers[:prunable], kept, strict=True)]
    layers = (*pruned, *network.layers[prunable:])
    return Network(layers, network.input_spec, {**network.metadata, "surrogate_sparsity": sparsity})


def _keep_entries(layer: Layer, keep: np.ndarray) -> Layer:
    """``layer`` with only the stored weights where ``keep`` (in CSR order) is true."""
    coo = layer.weight.tocoo()
    weight = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=layer.weight.shape)
    return Layer.create(weight, layer.bias, layer.activation)
