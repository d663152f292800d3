"""Export a masked torch MLP to prunemip's float64 :class:`~prunemip.network.Network`.

The exported weights are ``W ⊙ M`` and biases ``b ⊙ m_b`` in float64 (never a raw
parameter), then disconnected neurons are removed exactly (reference/pruning.md §0):

* a hidden neuron with no incoming weight outputs the constant ReLU(b_j): it is folded
  into the next layer's bias, b_{l+1} += W_{l+1}[:, j]·ReLU(b_j), and removed;
* a hidden neuron with no outgoing weight cannot influence the output: it is removed.

Both rules are applied until nothing changes (removing one neuron can disconnect
another). Inputs and outputs are never removed; a hidden layer left with no neuron keeps
one inert neuron (zero weights and bias). The result computes the same logits as the
masked model up to float64 rounding of the folded biases.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import scipy.sparse as sp
from torch import nn

from prunemip.data import Dataset
from prunemip.network import InputSpec, Network
from prunemip.pruning.config import TrainConfig
from prunemip.pruning.masks import Masks, linear_layers


def masked_arrays(model: nn.Module, masks: Masks) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``W ⊙ M`` and ``b ⊙ m_b`` of every linear layer as float64 arrays.

    Args:
        model: the masked MLP.
        masks: its masks.

    Returns:
        The dense weight matrices ``(n_out, n_in)`` and the bias vectors, layer by layer.
    """
    weights, biases = [], []
    for layer, weight_mask, bias_mask in zip(linear_layers(model), masks.weight, masks.bias, strict=True):
        weight = layer.weight.detach().double().cpu() * weight_mask.cpu()
        bias = layer.bias.detach().double().cpu() * bias_mask.cpu()
        weights.append(weight.numpy())
        biases.append(bias.numpy())
    return weights, biases


def remove_dead_neurons(
    weights: list[np.ndarray], biases: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict[str, int]]]:
    """Fold constant hidden neurons into the next bias and drop unused ones (see module doc).

    Args:
        weights: dense weight matrices ``(n_out, n_in)``, layer by layer (not changed).
        biases: the bias vectors (not changed).

    Returns:
        The shrunken weights and biases and, per hidden layer, how many neurons were
        ``folded`` (no inputs) and ``dropped`` (no outputs).
    """
    weights = [w.copy() for w in weights]
    biases = [b.copy() for b in biases]
    hidden = range(len(weights) - 1)
    alive = [np.ones(weights[i].shape[0], dtype=bool) for i in hidden]
    counts = [{"folded": 0, "dropped": 0} for _ in hidden]
    changed = True
    while changed:
        changed = False
        for i in hidden:
            constant = alive[i] & ~(weights[i] != 0).any(axis=1)
            if constant.any():
                biases[i + 1] += weights[i + 1][:, constant] @ np.maximum(biases[i][constant], 0.0)
                weights[i + 1][:, constant] = 0.0
                biases[i][constant] = 0.0
                alive[i] &= ~constant
                counts[i]["folded"] += int(constant.sum())
                changed = True
            unused = alive[i] & ~(weights[i + 1] != 0).any(axis=0)
            if unused.any():
                weights[i][unused] = 0.0
                biases[i][unused] = 0.0
                alive[i] &= ~unused
                counts[i]["dropped"] += int(unused.sum())
                changed = True
    for keep in alive:
        if not keep.any():
            keep[0] = True  # an inert neuron: its weights and bias are already zero
    inputs = np.ones(weights[0].shape[1], dtype=bool)
    for i in range(len(weights)):
        rows = alive[i] if i < len(alive) else np.ones(weights[i].shape[0], dtype=bool)
        weights[i] = weights[i][rows][:, inputs]
        biases[i] = biases[i][rows]
        inputs = rows
    return weights, biases, counts


def export_network(
    model: nn.Module, masks: Masks, input_spec: InputSpec, metadata: dict[str, Any] | None = None
) -> Network:
    """The masked MLP (ReLU hidden layers, linear output) as a float64 ``Network``.

    Args:
        model: the masked MLP.
        masks: its masks (the exported weights are ``W ⊙ M`` and ``b ⊙ m_b``).
        input_spec: the network's inputs (shape, box, provenance).
        metadata: recorded in the network.

    Returns:
        The network with disconnected neurons folded or dropped; per hidden layer the neurons
        folded and dropped are recorded as ``metadata["neurons_removed"]``.
    """
    weights, biases = masked_arrays(model, masks)
    weights, biases, counts = remove_dead_neurons(weights, biases)
    return Network.from_arrays(
        [sp.csr_matrix(w) for w in weights],
        biases,
        input_spec,
        metadata={**(metadata or {}), "neurons_removed": counts},
    )


def training_metadata(data: Dataset, config: TrainConfig, **items: Any) -> dict[str, Any]:
    """Where a model came from: the dataset, its split provenance, the training config.

    Args:
        data: the training split.
        config: the training configuration.
        **items: further entries (method, accuracy, ...).

    Returns:
        The metadata as plain JSON-able values.
    """
    return {"dataset": data.name, "data_provenance": data.provenance, "train_config": asdict(config), **items}
