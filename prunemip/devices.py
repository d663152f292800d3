"""The devices torch work may run on, checked once for training, falsification and bounds.

torch is imported only when a device is resolved (or ``cuda`` is checked), so reading
:data:`DEVICES` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunemip.errors import PrunemipError

if TYPE_CHECKING:
    import torch

#: Every device name a ``--device`` flag or a ``device`` option accepts.
DEVICES: tuple[str, ...] = ("cpu", "cuda")


def check_device(name: str) -> None:
    """Refuse a device that is unknown, or ``cuda`` where torch sees no GPU.

    Args:
        name: the device asked for.

    Raises:
        PrunemipError: one line naming the device and the fix.
    """
    if name not in DEVICES:
        raise PrunemipError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise PrunemipError(
                "device cuda was asked for, but torch finds no CUDA GPU here; use --device cpu"
            )


def torch_device(name: str) -> torch.device:
    """The torch device named ``name``, after :func:`check_device`.

    Args:
        name: ``cpu`` or ``cuda``.

    Returns:
        The device.
    """
    check_device(name)
    import torch

    return torch.device(name)
