"""torch → Network: state_dicts (pruned, wrapped, bias-free), modules, TorchScript and pickled modules."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from prunemip import InputSpec, PrunemipError
from prunemip.model_io import load_network, save_torch_checkpoint
from prunemip.torch_io import network_from_module, network_from_state_dict, network_to_module
from tests.test_model_io import assert_matches, inputs, mlp, one_line_error, stored_pattern


# ------------------------------------------------------------------ torch → Network
def test_state_dict_file_matches_torch(tmp_path: Path) -> None:
    model = mlp()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    network = load_network(tmp_path / "model.pt")
    assert [layer.activation for layer in network.layers] == ["relu", "relu", "identity"]
    assert network.widths == [6, 8, 5, 3]
    assert network.input_spec.shape == (6,) and not network.input_spec.is_bounded
    assert all(layer.weight.dtype == np.float64 for layer in network.layers)
    assert_matches(network, model, inputs((6,)))


def test_pruned_state_dict_uses_mask_not_stale_weight(tmp_path: Path) -> None:
    model = mlp()
    for module in (model[0], model[2]):
        prune.l1_unstructured(module, "weight", amount=0.6)
    with torch.no_grad():
        # Move every weight underneath the mask (as momentum does): `.weight` is now stale.
        model[0].weight_orig.add_(1.0)
        row, col = model[0].weight_mask.nonzero()[0].tolist()
        model[0].weight_orig[row, col] = 0.0  # a kept weight that is exactly zero
    assert not torch.equal(model[0].weight, model[0].weight_orig * model[0].weight_mask)
    from_module = network_from_module(model)  # before any forward refreshes `.weight`
    torch.save(model.state_dict(), tmp_path / "pruned.pt")
    assert "0.weight_orig" in model.state_dict() and "0.weight" not in model.state_dict()

    network = load_network(tmp_path / "pruned.pt")
    for net in (network, from_module):
        for layer, module in zip(net.layers[:2], (model[0], model[2]), strict=True):
            np.testing.assert_array_equal(stored_pattern(layer.weight), module.weight_mask.bool().numpy())
        assert net.layers[0].weight[row, col] == 0.0
        assert net.layers[0].weight.nnz == net.layers[0].nnz + 1
        assert_matches(net, model, inputs((6,)))  # model(x) computes weight_orig * weight_mask


def test_pruned_bias_is_masked() -> None:
    model = mlp((4, 3, 2))
    prune.l1_unstructured(model[0], "bias", amount=2)
    with torch.no_grad():
        model[0].bias_orig.add_(5.0)
    network = network_from_state_dict(model.state_dict())
    expected = (model[0].bias_orig * model[0].bias_mask).detach().double().numpy()
    np.testing.assert_array_equal(network.layers[0].bias, expected)
    assert_matches(network, model, inputs((4,)))


class _Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = mlp((5, 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.mark.parametrize(
    "make_state_dict",
    [
        lambda m: m.state_dict(),
        lambda m: OrderedDict(
            (k.replace("0.", "fc1.").replace("2.", "fc2."), v) for k, v in m.state_dict().items()
        ),
        lambda m: OrderedDict((f"module.layers.{k}", v) for k, v in m.state_dict().items()),
        lambda m: {"state_dict": m.state_dict(), "epoch": 3},
        lambda m: {"model_state_dict": m.state_dict(), "optimizer": {"lr": 0.1}},
        lambda m: {"model": m.state_dict()},
    ],
    ids=["plain", "named", "nested-prefix", "checkpoint", "model_state_dict", "model"],
)
def test_state_dict_layouts(tmp_path: Path, make_state_dict: Callable) -> None:
    model = _Wrapped().eval()
    torch.save(make_state_dict(model.layers), tmp_path / "ckpt.pth")
    assert_matches(load_network(tmp_path / "ckpt.pth"), model, inputs((5,)))


def test_bias_false_layers(tmp_path: Path) -> None:
    model = mlp(bias=False)
    torch.save(model.state_dict(), tmp_path / "nobias.pt")
    for network in (load_network(tmp_path / "nobias.pt"), network_from_module(model)):
        assert all(not layer.bias.any() for layer in network.layers)
        assert_matches(network, model, inputs((6,)))


def test_leading_flatten_nested_and_noop_modules() -> None:
    model = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(12, 7), nn.ReLU(), nn.Dropout(0.5)),
        nn.Identity(),
        nn.Linear(7, 4),
    ).eval()
    network = network_from_module(model, InputSpec.create((3, 2, 2), 0.0, 1.0))
    assert network.input_spec.shape == (3, 2, 2) and network.input_spec.is_bounded
    assert [layer.activation for layer in network.layers] == ["relu", "identity"]
    assert_matches(network, model, inputs((3, 2, 2)))


def test_consecutive_linears_keep_identity_through_torch_round_trip(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    network = network_from_module(model)
    assert [layer.activation for layer in network.layers] == ["identity", "relu", "identity"]
    assert_matches(network, model, inputs((4,)))
    save_torch_checkpoint(network, tmp_path / "ckpt.pt")
    reloaded = load_network(tmp_path / "ckpt.pt")
    assert [layer.activation for layer in reloaded.layers] == ["identity", "relu", "identity"]
    assert_matches(reloaded, model, inputs((4,)))


def test_network_to_module_reproduces_logits() -> None:
    model = mlp()
    network = network_from_module(model)
    x = inputs((6,))
    assert_matches(network, network_to_module(network), x)
    module64 = network_to_module(network, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(module64(x.double()).numpy(), network.forward(x.numpy()), atol=1e-12)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_file(tmp_path: Path, how: str) -> None:
    model = nn.Sequential(nn.Flatten(), *mlp((6, 8, 3))).eval()
    example = inputs((2, 3), batch=1)
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, example)
    scripted.save(str(tmp_path / "model.pt"))
    network = load_network(tmp_path / "model.pt", input_spec=InputSpec.create((2, 3)))
    assert network.widths == [6, 8, 3]
    assert_matches(network, model, inputs((2, 3)))


def test_traced_pruned_module(tmp_path: Path) -> None:
    model = mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    torch.jit.trace(model, inputs((6,), batch=1)).save(str(tmp_path / "traced.pt"))
    network = load_network(tmp_path / "traced.pt")
    assert network.layers[0].weight.nnz == int(model[0].weight_mask.sum())
    assert_matches(network, model, inputs((6,)))


# ------------------------------------------------------------------ pickled modules
def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    model = mlp()
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(PrunemipError) as excinfo:
        load_network(tmp_path / "whole.pt")
    message = one_line_error(excinfo)
    assert "--trust-pickle" in message and "whole.pt" in message
    assert_matches(load_network(tmp_path / "whole.pt", trust_pickle=True), model, inputs((6,)))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_raw_pickle_needs_trust(tmp_path: Path) -> None:
    with (tmp_path / "raw.pt").open("wb") as handle:
        pickle.dump(mlp().state_dict(), handle)
    with pytest.raises(PrunemipError, match="--trust-pickle"):
        load_network(tmp_path / "raw.pt")
