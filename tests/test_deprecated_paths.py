"""The import paths documented before the move still work for one release, with a warning.

Each old module is a thin alias (``prunemip._deprecated.moved_to``): a documented name read
through it is the very object of its new module, and reading it emits a
``DeprecationWarning`` that names the new path.
"""

from __future__ import annotations

import importlib

import pytest

#: (old module, new module, a name documented at the old path).
MOVED = [
    ("prunemip.encoders.pyomo", "prunemip.embed.pyomo", "network_block"),
    ("prunemip.encoders.pyomo", "prunemip.embed.pyomo", "PrunemipBlock"),
    ("prunemip.encoders.omlt", "prunemip.embed.omlt", "PrunemipFormulation"),
    ("prunemip.encoders.omlt", "prunemip.embed.omlt", "to_omlt_network_definition"),
    ("prunemip.solvers.embed", "prunemip.embed.highs", "add_network"),
    ("prunemip.adversarial", "prunemip.engine.attack", "find_adversarial_example"),
    ("prunemip.witnesses", "prunemip.encoders.bounds.witnesses", "witnessed_unstable"),
]


@pytest.mark.parametrize(("old", "new", "name"), MOVED, ids=[f"{old}.{name}" for old, _, name in MOVED])
def test_old_path_forwards_with_a_warning(old: str, new: str, name: str) -> None:
    if "pyomo" in old or "omlt" in old:
        pytest.importorskip("pyomo.environ")
    if "omlt" in old:
        pytest.importorskip("omlt")
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_from_import_through_an_old_path() -> None:
    with pytest.warns(DeprecationWarning, match=r"prunemip\.engine\.attack\.find_adversarial_example"):
        from prunemip.adversarial import find_adversarial_example
    from prunemip.engine.attack import find_adversarial_example as moved

    assert find_adversarial_example is moved


def test_an_unknown_name_is_an_attribute_error() -> None:
    old = importlib.import_module("prunemip.solvers.embed")
    with pytest.raises(AttributeError):
        _ = old.no_such_name
