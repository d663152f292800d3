"""Old import paths kept as thin aliases for one release.

A module that moved leaves a stub behind whose module-level ``__getattr__`` (PEP 562)
forwards every name to the new module and warns once per name::

    from prunemip._deprecated import moved_to
    __getattr__ = moved_to("prunemip.engine.attack", __name__)
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

#: The release in which the aliases go.
REMOVED_IN = "0.3"


def moved_to(new: str | Mapping[str, str], old: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the stub at ``old`` that forwards names to where they moved.

    Args:
        new: import path of the module every name now lives in, or a map from each
            forwarded name to its module (names not in the map are not forwarded).
        old: import path of the stub (its ``__name__``).

    Returns:
        The ``__getattr__`` to assign in the stub: it returns the moved attribute (raising
        ``AttributeError`` for a name that did not move) and emits a ``DeprecationWarning``
        pointing at the caller's line.
    """

    def forward(name: str) -> Any:
        target = new if isinstance(new, str) else new.get(name)
        if target is None or name.startswith("__"):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target), name)
        warnings.warn(
            f"{old}.{name} moved to {target}.{name}; the old path goes in prunemip {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return forward
