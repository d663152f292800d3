"""Load any supported model file as a :class:`Network`, and save networks.

``load_network`` reads ONNX (``.onnx``), prunemip's own format (``.npz``) and PyTorch
files: TorchScript archives, state_dicts and checkpoints (``weights_only=True``), and
pickled whole modules only when the caller trusts the file. ``save_network`` writes
prunemip's own format, which keeps the CSR pattern (the pruning mask) exactly;
``save_torch_checkpoint`` writes a state_dict checkpoint for PyTorch users;
``save_model`` picks one of them, or ONNX (:mod:`prunemip.onnx_export`), by the file's
suffix. Every write goes to a temporary file in the target directory first and is then
renamed into place.

torch and onnx are imported only when a function needs them.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from prunemip.atomic import atomic_write
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network

FORMAT_NAME = "prunemip-network"
FORMAT_VERSION = 1
#: The file suffixes :func:`save_model` writes, and what each holds.
SAVE_FORMATS = {
    ".npz": "prunemip's own format, exact",
    ".onnx": "ONNX, float64 unless asked for float32",
    ".pt": "PyTorch state_dict, float32",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------ writing
def _plain_json(value: Any, what: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays become numbers and lists)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, (np.generic, np.ndarray)):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=default))
    except (TypeError, ValueError) as exc:
        raise PrunemipError(f"{what} cannot be saved: {_first_line(exc)}") from None


def save_network(network: Network, path: str | Path) -> Path:
    """Write ``network`` in prunemip's own ``.npz`` format (exact CSR, bias, spec, metadata).

    Args:
        network: the network to save.
        path: the target file (written atomically).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: when the metadata is not JSON-serialisable or the file cannot be written.
    """
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "activations": [layer.activation for layer in network.layers],
        "input_spec": _plain_json(network.input_spec.to_dict(), "input spec"),
        "metadata": _plain_json(network.metadata, "network metadata"),
    }
    arrays: dict[str, np.ndarray] = {"header": np.array(json.dumps(header))}
    for index, layer in enumerate(network.layers):
        arrays[f"layer{index}_data"] = layer.weight.data
        arrays[f"layer{index}_indices"] = layer.weight.indices
        arrays[f"layer{index}_indptr"] = layer.weight.indptr
        arrays[f"layer{index}_shape"] = np.array(layer.weight.shape, dtype=np.int64)
        arrays[f"layer{index}_bias"] = layer.bias
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))


def save_torch_checkpoint(network: Network, path: str | Path) -> Path:
    """Write a float32 ``nn.Sequential`` state_dict checkpoint loadable with ``weights_only=True``.

    Next to ``state_dict`` it stores ``prunemip_input_spec``, ``prunemip_metadata`` and
    ``prunemip_activations``. Float32 rounds the weights, and the pruning mask becomes
    the pattern of nonzero weights; use :func:`save_network` to keep both exactly.

    Args:
        network: the network to save.
        path: the target file (written atomically).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: when the metadata is not JSON-serialisable or the file cannot be written.
    """
    import torch

    from prunemip.torch_io import network_to_module

    checkpoint = {
        "state_dict": network_to_module(network).state_dict(),
        "prunemip_input_spec": _plain_json(network.input_spec.to_dict(), "input spec"),
        "prunemip_metadata": _plain_json(network.metadata, "network metadata"),
        "prunemip_activations": [layer.activation for layer in network.layers],
    }
    return atomic_write(path, lambda handle: torch.save(checkpoint, handle))


def save_model(network: Network, path: str | Path, *, onnx_precision: str = "float64") -> Path:
    """Write ``network`` in the format its suffix names (:data:`SAVE_FORMATS`), atomically.

    ``.npz``: :func:`save_network`; ``.pt``: :func:`save_torch_checkpoint`; ``.onnx``:
    :func:`prunemip.onnx_export.save_onnx` in ``onnx_precision``.

    Args:
        network: the network to save.
        path: the target file.
        onnx_precision: ``"float64"`` or ``"float32"`` for an ``.onnx`` file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        PrunemipError: for another suffix, float32 asked of a format other than ONNX, or a
            file that cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise PrunemipError(f"cannot write {target.name!r}: use a {' or '.join(SAVE_FORMATS)} file name")
    if suffix == ".onnx":
        from prunemip.onnx_export import save_onnx

        return save_onnx(network, target, onnx_precision)
    if onnx_precision != "float64":
        raise PrunemipError(f"precision {onnx_precision} applies to .onnx files only, not {target.name!r}")
    return (save_torch_checkpoint if suffix == ".pt" else save_network)(network, target)


# ------------------------------------------------------------------ reading
def _load_native(path: Path) -> Network:
    if not zipfile.is_zipfile(path):
        raise PrunemipError(f"{path}: corrupt prunemip network file (not the zip archive numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "header" not in archive.files:
                raise PrunemipError(f"{path}: not a prunemip network file (no header)")
            header = json.loads(str(archive["header"]))
            if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
                raise PrunemipError(f"{path}: not a prunemip network file")
            if header.get("version") != FORMAT_VERSION:
                raise PrunemipError(
                    f"{path}: prunemip network format version {header.get('version')} is not "
                    f"supported (this prunemip reads version {FORMAT_VERSION})"
                )
            layers = []
            for index, activation in enumerate(header["activations"]):
                shape = tuple(int(n) for n in archive[f"layer{index}_shape"])
                weight = sp.csr_matrix(
                    (
                        archive[f"layer{index}_data"],
                        archive[f"layer{index}_indices"],
                        archive[f"layer{index}_indptr"],
                    ),
                    shape=shape,
                )
                weight.check_format(full_check=True)
                layers.append(Layer.create(weight, archive[f"layer{index}_bias"], activation))
            spec = InputSpec.from_dict(header["input_spec"])
            metadata = header.get("metadata") or {}
    except PrunemipError:
        raise
    except Exception as exc:
        raise PrunemipError(f"{path}: corrupt prunemip network file ({_first_line(exc)})") from None
    return Network(tuple(layers), spec, metadata)


def _zip_names(path: Path) -> list[str]:
    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _is_torchscript(names: list[str]) -> bool:
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


#: How a pre-1.6 ``torch.save`` file starts: pickle protocol 2 and torch's pickled magic number.
_LEGACY_TORCH_HEAD = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _pickle_refused(path: Path) -> PrunemipError:
    return PrunemipError(
        f"{path} holds a pickled object, and loading one can run any code: load it only if you trust "
        "it, with --trust-pickle (in Python, trust_pickle=True)"
    )


def _torch_reason(exc: BaseException) -> str:
    """Why torch could not read a file, in one line, without torch's advice to load it unsafely."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.partition("WeightsUnpickler error:")[2]
    elif not isinstance(exc, (RuntimeError, OSError, pickle.UnpicklingError)):
        return "damaged or truncated"
    text = re.sub(r"\[enforce fail at [^]]*\]\s*\.?\s*", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "damaged or truncated"


def _check_torch_container(path: Path, names: list[str], trust_pickle: bool) -> None:
    """Refuse a file ``torch.save`` cannot have written, and an untrusted plain pickle.

    ``torch.save`` writes a zip archive (PyTorch >= 1.6) or a pickle stream that starts with
    torch's magic number; any other pickle is an arbitrary Python object.
    """
    if names:
        return
    with path.open("rb") as handle:
        head = handle.read(len(_LEGACY_TORCH_HEAD))
    if head.startswith(b"PK"):
        raise PrunemipError(f"{path}: not a readable PyTorch file (a damaged or truncated zip archive)")
    if not head.startswith(b"\x80"):
        raise PrunemipError(
            f"{path}: not a readable PyTorch file (neither a zip archive nor a pickle, the formats "
            "torch.save writes)"
        )
    if head != _LEGACY_TORCH_HEAD and not trust_pickle:
        raise _pickle_refused(path)


def _load_torch(path: Path, names: list[str], trust_pickle: bool, input_spec: InputSpec | None) -> Network:
    """Read a TorchScript archive, a state_dict/checkpoint or (if trusted) a pickled module."""
    import torch
    from torch import nn

    from prunemip.torch_io import network_from_module, network_from_state_dict

    if _is_torchscript(names):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise PrunemipError(f"{path}: unreadable TorchScript file ({_first_line(exc)})") from None
        return network_from_module(module, input_spec)
    _check_torch_container(path, names, trust_pickle)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise _pickle_refused(path) from None
        raise PrunemipError(f"{path}: not a readable PyTorch file ({_torch_reason(exc)})") from None
    except Exception as exc:
        raise PrunemipError(f"{path}: not a readable PyTorch file ({_torch_reason(exc)})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), nn.Module):
        obj = obj["model"]
    if isinstance(obj, nn.Module):
        return network_from_module(obj, input_spec)
    if isinstance(obj, Mapping):
        return network_from_state_dict(obj, input_spec)
    raise PrunemipError(f"{path} holds a {type(obj).__name__}, not a model, state_dict or checkpoint")


def load_network(
    path: str | Path, *, trust_pickle: bool = False, input_spec: InputSpec | None = None
) -> Network:
    """Load a model file as a float64 :class:`Network`.

    ``.onnx`` is read with :mod:`prunemip.onnx_io`, ``.npz`` as prunemip's own format,
    anything else as PyTorch (TorchScript, state_dict or checkpoint; a pickled module
    only with ``trust_pickle=True``). ``input_spec`` overrides the file's input spec;
    without either the inputs are unbounded.

    Args:
        path: the model file.
        trust_pickle: allow a pickled PyTorch module (loading it can run arbitrary code).
        input_spec: the inputs' shape and range, replacing the file's.

    Returns:
        The network.

    Raises:
        PrunemipError: for a missing, unreadable or unsupported file, or a pickle not trusted.
    """
    path = Path(path)
    if not path.exists():
        raise PrunemipError(f"{path}: no such file")
    if not path.is_file():
        raise PrunemipError(
            f"{path} is {'a folder' if path.is_dir() else 'not a regular file'}, not a model file"
        )
    if path.stat().st_size == 0:
        raise PrunemipError(f"{path} is empty, not a model file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from prunemip.onnx_io import load_onnx

        return load_onnx(path, input_spec)
    names = _zip_names(path)
    if suffix == ".npz" or "header.npy" in names:
        network = _load_native(path)
        return network if input_spec is None else network.with_input_spec(input_spec)
    return _load_torch(path, names, trust_pickle, input_spec)
