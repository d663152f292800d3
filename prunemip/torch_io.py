"""Conversions between :class:`~prunemip.network.Network` and PyTorch.

Reads an ``nn.Sequential`` of ``Linear``/``ReLU`` (optionally ``Flatten``, ``Identity``,
``Dropout`` and nested ``Sequential``), its TorchScript form, or a plain MLP state_dict.
Modules and state_dicts pruned with ``torch.nn.utils.prune`` are read through their
masks (``weight_orig * weight_mask``): the mask's ones become the stored CSR entries,
so the pruning pattern survives even where a kept weight is exactly zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network

SUPPORTED_MODULES = "Linear, ReLU, Flatten (and Identity, Dropout, nested Sequential)"
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
_PARAMETER_NAMES = frozenset({"weight", "bias", "weight_orig", "weight_mask", "bias_orig", "bias_mask"})
_KINDS = {
    "Linear": "linear",
    "ReLU": "relu",
    "Flatten": "flatten",
    "Identity": "skip",
    "Dropout": "skip",
    "Sequential": "sequential",
}


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().to(torch.float64).numpy()


def _masked_weight(weight: np.ndarray, mask: np.ndarray | None) -> sp.csr_matrix | np.ndarray:
    """The weight as CSR holding exactly the mask's ones, or the dense array when unmasked."""
    if mask is None:
        return weight
    if mask.shape != weight.shape:
        raise PrunemipError(
            f"pruning mask of shape {mask.shape} does not match weight of shape {weight.shape}"
        )
    rows, cols = np.nonzero(mask)
    data = weight[rows, cols] * mask[rows, cols]
    return sp.coo_matrix((data, (rows, cols)), shape=weight.shape).tocsr()


def _masked_bias(bias: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return bias if mask is None else np.where(mask != 0, bias * mask, 0.0)


def _layer_from_tensors(
    tensors: Mapping[str, torch.Tensor], name: str
) -> tuple[sp.csr_matrix | np.ndarray, np.ndarray]:
    """Weight and bias of one linear layer from its parameters/buffers (pruned or not)."""
    arrays = {key: _to_numpy(value) for key, value in tensors.items() if key in _PARAMETER_NAMES}
    weight = arrays.get("weight_orig", arrays.get("weight"))
    if weight is None:
        raise PrunemipError(f"layer {name} has no weight")
    if weight.ndim != 2:
        hint = ""
        if weight.ndim > 2:
            hint = " and looks like a convolution"
        elif weight.ndim == 1:
            hint = " and looks like a normalisation layer"
        raise PrunemipError(
            f"layer {name} has a {weight.ndim}-D weight of shape {tuple(weight.shape)}{hint}; "
            "prunemip reads fully connected (Linear) layers only"
        )
    mask = arrays.get("weight_mask") if "weight_orig" in arrays else None
    matrix = _masked_weight(weight, mask)
    bias = arrays.get("bias_orig", arrays.get("bias"))
    if bias is None:
        bias = np.zeros(weight.shape[0])
    elif bias.shape != (weight.shape[0],):
        raise PrunemipError(
            f"layer {name} has a bias of shape {tuple(bias.shape)} for {weight.shape[0]} outputs"
        )
    else:
        bias = _masked_bias(bias, arrays.get("bias_mask") if "bias_orig" in arrays else None)
    return matrix, bias


# ------------------------------------------------------------------ nn.Module
def _module_kind(module: nn.Module) -> str:
    """``linear``/``relu``/``flatten``/``skip``/``sequential`` or the module's class name."""
    if isinstance(module, torch.jit.ScriptModule):
        name = str(module.original_name)
        return _KINDS.get(name, name)
    for cls, kind in (
        (nn.Linear, "linear"),
        (nn.ReLU, "relu"),
        (nn.Flatten, "flatten"),
        (nn.Identity, "skip"),
        (nn.Dropout, "skip"),
        (nn.Sequential, "sequential"),
    ):
        if isinstance(module, cls):
            return kind
    return type(module).__name__


def _leaf_modules(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, str, nn.Module]]:
    """``(name, kind, module)`` of a Sequential's leaves, nested Sequentials flattened."""
    for name, child in module.named_children():
        full_name = f"{prefix}{name}"
        kind = _module_kind(child)
        if kind == "sequential":
            yield from _leaf_modules(child, f"{full_name}.")
        else:
            yield full_name, kind, child


def network_from_module(module: nn.Module, input_spec: InputSpec | None = None) -> Network:
    """Convert an ``nn.Sequential`` MLP (or its TorchScript form) to a float64 :class:`Network`.

    ``Linear`` followed by ``ReLU`` is a relu layer, any other ``Linear`` an identity
    layer. Pruned ``Linear`` modules are read as ``weight_orig * weight_mask``.

    Args:
        module: an ``nn.Sequential`` (nested ones are flattened) or a single ``nn.Linear``.
        input_spec: the inputs' shape and range (default: flat, as wide as the first layer, unbounded).

    Returns:
        The network.

    Raises:
        PrunemipError: for a module that is not a Sequential of ``Linear``/``ReLU``/``Flatten``.
    """
    kind = _module_kind(module)
    if kind == "linear":
        leaves = [("0", kind, module)]
    elif kind == "sequential":
        leaves = list(_leaf_modules(module))
    else:
        raise PrunemipError(
            f"the model is a {kind}, not an nn.Sequential; prunemip reads an nn.Sequential of "
            f"{SUPPORTED_MODULES}, or a plain MLP state_dict"
        )
    weights: list[sp.csr_matrix | np.ndarray] = []
    biases: list[np.ndarray] = []
    activations: list[str] = []
    for name, leaf_kind, leaf in leaves:
        if leaf_kind == "linear":
            tensors = dict(leaf.named_parameters(recurse=False))
            tensors.update(leaf.named_buffers(recurse=False))
            weight, bias = _layer_from_tensors(tensors, f"{name} (Linear)")
            weights.append(weight)
            biases.append(bias)
            activations.append("identity")
        elif leaf_kind == "relu":
            if not activations:
                raise PrunemipError(
                    f"layer {name} (ReLU) comes before any Linear layer; prunemip cannot apply "
                    "an activation to the inputs"
                )
            activations[-1] = "relu"
        elif leaf_kind == "flatten":
            start, end = getattr(leaf, "start_dim", 1), getattr(leaf, "end_dim", -1)
            if (start, end) != (1, -1):
                raise PrunemipError(
                    f"layer {name} (Flatten) flattens dims {start}..{end}; prunemip supports "
                    "only Flatten(start_dim=1, end_dim=-1)"
                )
        elif leaf_kind != "skip":
            raise PrunemipError(
                f"layer {name} ({leaf_kind}) is not supported; prunemip reads {SUPPORTED_MODULES}"
            )
    if not weights:
        raise PrunemipError("the model has no Linear layer")
    return Network.from_arrays(weights, biases, _spec(input_spec, weights), activations)


def _spec(input_spec: InputSpec | None, weights: list[Any]) -> InputSpec:
    return input_spec if input_spec is not None else InputSpec.create(int(weights[0].shape[1]))


def network_to_module(network: Network, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """An ``nn.Sequential`` of ``Linear``/``ReLU`` computing the network's logits.

    Args:
        network: the network.
        dtype: the parameters' dtype (float32 rounds float64 weights).

    Returns:
        The module, dense (zero weights are stored as zeros, no pruning mask).
    """
    modules: list[nn.Module] = []
    for layer in network.layers:
        linear = nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.toarray()))
            linear.bias.copy_(torch.from_numpy(layer.bias))
        modules.append(linear)
        if layer.activation == "relu":
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


# ------------------------------------------------------------------ state_dict
def unwrap_checkpoint(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Split a checkpoint into ``(state_dict, outer dict)``.

    A mapping of tensors is itself the state_dict; otherwise the first of
    ``state_dict``/``model_state_dict``/``model`` holding a mapping is used (searched
    two levels deep). The outer dict carries prunemip's ``prunemip_*`` entries, if any.

    Args:
        obj: a state_dict or a checkpoint dict.

    Returns:
        ``(state_dict, outer)``; both are ``obj`` for a plain state_dict.

    Raises:
        PrunemipError: when no state_dict of tensors is found.
    """
    outer = obj
    for _ in range(3):
        if all(isinstance(value, torch.Tensor) for value in obj.values()):
            return obj, outer
        inner = next((obj[key] for key in CHECKPOINT_KEYS if isinstance(obj.get(key), Mapping)), None)
        if inner is None:
            break
        obj = inner
    keys = ", ".join(repr(key) for key in list(obj)[:8])
    raise PrunemipError(
        f"the checkpoint is a dict with keys {keys} but holds no state_dict of tensors; expected a "
        f"state_dict or a checkpoint with one of {', '.join(repr(k) for k in CHECKPOINT_KEYS)}"
    )


def _group_by_module(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        prefix, _, param = str(key).rpartition(".")
        if param not in _PARAMETER_NAMES:
            raise PrunemipError(
                f"state_dict entry {key!r} is not a Linear weight or bias; prunemip reads plain "
                "Linear/ReLU MLPs (no normalisation, convolution or other layers)"
            )
        groups.setdefault(prefix, {})[param] = value
    return groups


def network_from_state_dict(state_dict: Mapping[str, Any], input_spec: InputSpec | None = None) -> Network:
    """Build a :class:`Network` from the state_dict of a Sequential MLP (or a checkpoint).

    Layers are taken in state_dict order with ReLU between them and identity at the end
    (prunemip's own checkpoints record their activations, input spec and metadata).

    Args:
        state_dict: the state_dict, or a checkpoint holding one (see :func:`unwrap_checkpoint`).
        input_spec: the inputs' shape and range (default: the checkpoint's, else flat and unbounded).

    Returns:
        The network.

    Raises:
        PrunemipError: for entries that are not Linear weights/biases or layers whose sizes do not chain.
    """
    tensors, outer = unwrap_checkpoint(state_dict)
    weights: list[sp.csr_matrix | np.ndarray] = []
    biases: list[np.ndarray] = []
    names: list[str] = []
    for prefix, group in _group_by_module(tensors).items():
        name = repr(prefix or "<root>")
        weight, bias = _layer_from_tensors(group, name)
        if weights and weight.shape[1] != weights[-1].shape[0]:
            raise PrunemipError(
                f"state_dict layer {name} takes {weight.shape[1]} inputs but the previous layer "
                f"{names[-1]} has {weights[-1].shape[0]} outputs"
            )
        weights.append(weight)
        biases.append(bias)
        names.append(name)
    if not weights:
        raise PrunemipError("the state_dict holds no layers")
    activations = outer.get("prunemip_activations")
    if activations is not None and len(activations) != len(weights):
        raise PrunemipError(f"the checkpoint lists {len(activations)} activations for {len(weights)} layers")
    if input_spec is None and outer.get("prunemip_input_spec") is not None:
        input_spec = InputSpec.from_dict(dict(outer["prunemip_input_spec"]))
    return Network.from_arrays(
        weights,
        biases,
        _spec(input_spec, weights),
        activations,
        dict(outer.get("prunemip_metadata") or {}),
    )
