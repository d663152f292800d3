"""Old import paths kept as thin aliases for one release.

A module that moved leaves a stub behind whose module-level ``__getattr__`` (PEP 562)
forwards every name to the new module and warns once per name::

    from prunemip._deprecated import moved_to
    __getattr__ = moved_to("prunemip.engine.attack", __name__)
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

#: The release in which the aliases go.
REMOVED_IN = "0.3"


def moved_to(new: str, old: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the stub at ``old`` that forwards to module ``new``.

    Args:
        new: import path of the module the names now live in.
        old: import path of the stub (its ``__name__``).

    Returns:
        The ``__getattr__`` to assign in the stub: it returns ``new``'s attribute (raising
        ``AttributeError`` for a name ``new`` lacks) and emits a ``DeprecationWarning``.
    """

    def forward(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(importlib.import_module(new), name)
        warnings.warn(
            f"{old}.{name} moved to {new}.{name}; the old path goes in prunemip {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return forward
