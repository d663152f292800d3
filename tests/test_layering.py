"""The import graph of prunemip stays layered: no cycles, no import from a lower layer up.

The graph is read from the source with ``ast`` (every ``import``/``from … import``,
including those inside functions), so a lazy import cannot hide an edge. The layers,
bottom to top, are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Source folder → import path of the package it installs as.
PACKAGE_ROOTS = {"prunemip": "prunemip", "encoders": "prunemip.encoders", "solvers": "prunemip.solvers"}

#: Layers, bottom first: a module may import only from its own layer or a lower one. The
#: first matching prefix wins (longest prefixes are listed before their parents).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "prunemip.errors",
            "prunemip.atomic",
            "prunemip.keys",
            "prunemip.network",
            "prunemip.regions",
            "prunemip.rounding",
            "prunemip.interrupts",
            "prunemip._deprecated",
            "prunemip.adversarial",
            "prunemip.witnesses",
        ),
    ),
    (
        "io",
        (
            "prunemip.model_io",
            "prunemip.onnx_io",
            "prunemip.onnx_export",
            "prunemip.torch_io",
            "prunemip.vnnlib",
            "prunemip.data",
            "prunemip.idx",
            "prunemip.devices",
            "prunemip.text_io",
        ),
    ),
    ("encoders", ("prunemip.encoders",)),
    ("solvers", ("prunemip.solvers",)),
    ("pruning and decisions", ("prunemip.pruning", "prunemip.engine", "prunemip.embed")),
    ("study", ("prunemip.study",)),
    ("cli and public face", ("prunemip.cli", "prunemip.__main__", "prunemip")),
)


def _module_name(path: Path) -> str:
    top = path.relative_to(ROOT).parts[0]
    parts = path.relative_to(ROOT / top).with_suffix("").parts
    name = ".".join((PACKAGE_ROOTS[top], *parts))
    return name.removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for top in PACKAGE_ROOTS for path in sorted((ROOT / top).rglob("*.py"))}


MODULES = _modules()


def _resolve(target: str) -> str | None:
    """The prunemip module an import names (``from pkg import mod`` may name a submodule)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            # ``from pkg import mod`` depends on the submodule; ``from pkg import name`` on pkg.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.startswith("prunemip") and (resolved := _resolve(target)) and resolved != name:
                found.add(resolved)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md")


def _folder(module: str) -> str:
    """The room a module belongs to: the top-level package under ``prunemip`` that holds it
    (``prunemip.encoders.bounds.linear`` → ``prunemip.encoders``).

    Sub-folders of a room (``encoders/bounds/``, ``solvers/obbt/``) are parts of it; their
    order is checked module by module. The modules directly in ``prunemip/`` span layers
    (core, io, the public face), so each is a node of its own.
    """
    parts = module.split(".")
    if len(parts) > 2 or MODULES[module].name == "__init__.py":
        return ".".join(parts[:2])
    return module


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_known_edges() -> None:
    assert "prunemip.network" in GRAPH["prunemip.encoders.bigm"]
    assert "prunemip.encoders.mip_model" in GRAPH["prunemip.solvers.highs"]
    assert len(MODULES) > 50


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle or ())


def test_no_import_cycle_between_folders() -> None:
    folders: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        edges = folders.setdefault(_folder(module), set())
        edges |= {_folder(t) for t in targets if _folder(t) != _folder(module)}
    cycle = _cycle(folders)
    assert cycle is None, " -> ".join(cycle or ())


@pytest.mark.parametrize(
    ("graph", "expected"),
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]), ({"a": {"b"}, "b": set()}, None)],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert _cycle(graph) == expected
