"""Data-free magnitude pruning of an exported :class:`Network` (no torch, no training).

Used to make a cheap surrogate of a given network (Pham et al., arXiv 2505.01985, 2025):
the ``sparsity`` fraction of the smallest-magnitude weights of the hidden layers,
ranked globally, is removed; the output layer stays dense unless asked, and every layer
keeps at least its largest weight.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from prunemip.errors import PrunemipError
from prunemip.network import Layer, Network


def magnitude_prune(network: Network, sparsity: float, include_output: bool = False) -> Network:
    """The network with ``round(sparsity · N)`` of its prunable weights set to zero (removed)."""
    if not 0.0 <= sparsity < 1.0:
        raise PrunemipError(f"sparsity must be in [0, 1), got {sparsity}")
    prunable = len(network.layers) if include_output else len(network.layers) - 1
    if prunable == 0:
        raise PrunemipError("the network has only its output layer; nothing to prune")
    magnitudes = np.concatenate([np.abs(layer.weight.data) for layer in network.layers[:prunable]])
    n_remove = round(sparsity * magnitudes.size)
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[np.argsort(magnitudes, kind="stable")[:n_remove]] = False
    layers = []
    offset = 0
    for index, layer in enumerate(network.layers):
        if index >= prunable:
            layers.append(layer)
            continue
        count = layer.weight.data.size
        mask = keep[offset : offset + count]
        offset += count
        if count and not mask.any():  # never let a layer collapse
            mask = mask.copy()
            mask[int(np.argmax(np.abs(layer.weight.data)))] = True
        coo = layer.weight.tocoo()
        weight = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=layer.weight.shape)
        layers.append(Layer.create(weight, layer.bias, layer.activation))
    return Network(tuple(layers), network.input_spec, {**network.metadata, "surrogate_sparsity": sparsity})
