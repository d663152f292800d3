"""Export of a masked torch MLP to a Network: dead neurons folded or dropped, the same logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunemip.network import InputSpec
from prunemip.pruning.export import export_network, remove_dead_neurons
from prunemip.pruning.masks import Masks
from prunemip.pruning.scores import ScoreInputs, prune_by_scores
from prunemip.pruning.structured import neuron_masks, neuron_norms
from tests.pruning.test_methods import mlp


def test_remove_dead_neurons_folds_constants_and_drops_unused_ones() -> None:
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(5, 3)), rng.normal(size=(4, 5)), rng.normal(size=(2, 4))]
    biases = [rng.normal(size=5) + 1.0, rng.normal(size=4), rng.normal(size=2)]
    weights[0][1] = 0.0  # neuron 1 of layer 1: no inputs, constant ReLU(b)
    weights[1][:, 3] = 0.0  # neuron 3 of layer 1: no outputs
    weights[2][:, 2] = 0.0  # neuron 2 of layer 2: no outputs -> dropped
    weights[1][:, 4] = 0.0
    weights[1][2, 4] = 1.5  # neuron 4 of layer 1 only feeds the dropped neuron -> dropped too
    shrunk, new_biases, counts = remove_dead_neurons(weights, biases)
    assert [w.shape for w in shrunk] == [(2, 3), (3, 2), (2, 3)]
    assert counts == [{"folded": 1, "dropped": 2}, {"folded": 0, "dropped": 1}]
    x = rng.random((50, 3))

    def forward(ws, bs):
        h = x
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = h @ w.T + b
            h = np.maximum(h, 0) if i < len(ws) - 1 else h
        return h

    np.testing.assert_allclose(forward(shrunk, new_biases), forward(weights, biases), rtol=0, atol=1e-12)


@pytest.mark.parametrize("structured", [False, True])
def test_export_reproduces_the_torch_logits(structured: bool) -> None:
    model = mlp((12, 20, 16, 4))
    if structured:
        masks = neuron_masks(Masks.dense(model), neuron_norms(model), 0.5)
    else:
        masks = prune_by_scores("random", model, Masks.dense(model), ScoreInputs(seed=4), 0.93, "layer")
    masks.apply(model)
    network = export_network(model, masks, InputSpec.create(12, 0.0, 1.0), {"method": "test"})
    removed = network.metadata["neurons_removed"]
    assert sum(c["folded"] + c["dropped"] for c in removed) > 0
    assert network.widths[1] < 20 or network.widths[2] < 16
    assert network.nnz <= masks.nnz(prunable_only=False)
    x = torch.rand(64, 12)
    with torch.no_grad():
        expected = model.double()(x.double()).numpy()
    np.testing.assert_allclose(network.forward(x.double().numpy()), expected, rtol=0, atol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(network.forward(x.numpy()), model.float()(x).numpy(), atol=1e-5)
