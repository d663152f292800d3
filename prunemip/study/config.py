"""Study configurations: what to train, which images to attack, how to solve.

A study is a TOML file (see ``experiments/*.toml``)::

    name = "cacciola-fashion"
    [data]        dataset = "fashion-mnist"   # also data_dir, split_seed
    [training]    epochs, finetune_epochs, batch_size, lr, optimizer, seeds = [0, 1, 2]
    architectures = ["2x50", "2x100", "100,100"]
    [[methods]]   name = "magnitude"; sparsities = [0.5, 0.9]; options = { ... }
    [[methods]]   name = "auto"; accuracy_budget = 1.0; options = { ... }
    [attack]      images = 20, perturbations = [{norm = "l1", radius = 5.0}], target = "runner-up",
                  mode = "decide", time_limit = 180, bounds = "ia", gradient_attack = true,
                  surrogate = false, solver_seeds = [0]

``bounds`` is a method of :func:`prunemip.solvers.bounds.compute_bounds` (the default ``ia``
measures the MIP with interval bounds alone); ``gradient_attack = false`` skips the quick
gradient attack before the MIP, so that solve times measure the MIP itself.

The dense baseline is always part of the grid. The ``auto`` method is the network
:func:`prunemip.study.auto.search` chooses: the least MIP-cost proxy within
``accuracy_budget`` points (default 1.0) of the dense model's validation accuracy, with the
attack's perturbations as the proxy's balls; it takes no ``sparsities`` (the search picks
one; its one job carries sparsity 0) and its ``options`` are the fields of
:class:`~prunemip.study.search_space.SearchSpace`. Every mistake is reported with the key
path (``methods[1].sparsities``) and what would be valid.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prunemip.errors import PrunemipError
from prunemip.pruning.config import parse_arch
from prunemip.regions import BALL_NORMS
from prunemip.solvers.methods import BOUNDS_METHODS, DEFAULT_BOUNDS
from prunemip.text_io import read_text

AUTO = "auto"
TARGET_RULES = ("runner-up", "untargeted")
MODES = ("decide", "optimize")
OPTIMIZERS = ("adam", "sgd")


def architecture_name(widths: tuple[int, ...]) -> str:
    """The short name of hidden widths: ``2x100`` when all are equal, else ``100,50``.

    Args:
        widths: the hidden layers' widths.

    Returns:
        The name, as tables and labels show it.
    """
    if len(set(widths)) == 1:
        return f"{len(widths)}x{widths[0]}"
    return ",".join(str(width) for width in widths)


@dataclass(frozen=True)
class StudyMethod:
    """A pruning method (by registry name), the sparsities to run it at, and its options."""

    name: str
    sparsities: tuple[float, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Perturbation:
    norm: str
    radius: float

    @property
    def label(self) -> str:
        return f"{'Linf' if self.norm == 'linf' else 'L1'}={self.radius:g}"


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 20
    finetune_epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class AttackSpec:
    images: int = 10
    perturbations: tuple[Perturbation, ...] = (Perturbation("linf", 0.05),)
    target: str = "runner-up"
    mode: str = "decide"
    time_limit: float = 180.0
    bounds: str = "ia"
    gradient_attack: bool = True
    surrogate: bool = False
    solver_seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: the grid of models and attack jobs it defines."""

    name: str
    dataset: str
    data_dir: str | None
    split_seed: int
    architectures: tuple[tuple[int, ...], ...]
    methods: tuple[StudyMethod, ...]
    training: TrainingSpec
    attack: AttackSpec
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Reader:
    """Typed access to a TOML table that names the offending key in every error."""

    def __init__(self, table: dict[str, Any], path: str) -> None:
        self.table = table
        self.path = path
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, required: bool = False
    ) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required or default is ...:
                raise PrunemipError(f"config: {self.where(key)} is missing")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise PrunemipError(f"config: {self.where(key)} must be a {expected}, got {value!r}")
        return value

    def number_list(self, key: str, kind: type, default: tuple[Any, ...]) -> tuple[Any, ...]:
        values = self.get(key, list, list(default))
        out = []
        for index, value in enumerate(values):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise PrunemipError(
                    f"config: {self.where(key)}[{index}] must be a {kind.__name__}, got {value!r}"
                )
            out.append(value)
        if not out:
            raise PrunemipError(f"config: {self.where(key)} must not be empty")
        return tuple(out)

    def table_at(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict, {}), self.where(key))

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise PrunemipError(
                f"config: unknown key {self.where(unknown[0])} (known: {', '.join(sorted(self.used))})"
            )


def _choice(reader: _Reader, key: str, choices: tuple[str, ...], default: str) -> str:
    value = reader.get(key, str, default)
    if value not in choices:
        raise PrunemipError(f"config: {reader.where(key)} is {value!r}; choose one of {', '.join(choices)}")
    return value


def _positive(reader: _Reader, key: str, value: float) -> None:
    if not value > 0:
        raise PrunemipError(f"config: {reader.where(key)} must be > 0, got {value}")


def _methods(raw: Any) -> tuple[StudyMethod, ...]:
    if not isinstance(raw, list):
        raise PrunemipError("config: methods must be an array of tables ([[methods]])")
    methods = []
    for index, table in enumerate(raw):
        if not isinstance(table, dict):
            raise PrunemipError(f"config: methods[{index}] must be a table")
        reader = _Reader(table, f"methods[{index}]")
        name = reader.get("name", str, required=True)
        method = _auto_method(reader) if name == AUTO else _pruning_method(reader, name)
        reader.finish()
        methods.append(method)
    return tuple(methods)


def _pruning_method(reader: _Reader, name: str) -> StudyMethod:
    sparsities = reader.number_list("sparsities", float, ())
    for position, sparsity in enumerate(sparsities):
        if not 0.0 <= sparsity < 1.0:
            raise PrunemipError(
                f"config: {reader.where('sparsities')}[{position}] is {sparsity}; sparsity must lie in [0, 1)"
            )
    return StudyMethod(name, sparsities, dict(reader.get("options", dict, {})))


def _auto_method(reader: _Reader) -> StudyMethod:
    """The ``auto`` method: its budget and search options, checked; one job at sparsity 0."""
    from prunemip.study.search_space import SearchSpace, check_budget

    if "sparsities" in reader.table:
        raise PrunemipError(
            f"config: {reader.where('sparsities')}: auto chooses the sparsity; drop sparsities"
        )
    budget = reader.get("accuracy_budget", float, 1.0)
    options = reader.get("options", dict, {})
    try:
        check_budget(budget)
        SearchSpace.from_options(options)
    except PrunemipError as error:
        raise PrunemipError(f"config: {reader.path}: {error}") from None
    plain = {key: tuple(value) if isinstance(value, list) else value for key, value in options.items()}
    return StudyMethod(AUTO, (0.0,), {"accuracy_budget": budget, **plain})


def _with_balls(method: StudyMethod, perturbations: tuple[Perturbation, ...]) -> StudyMethod:
    """``auto`` searches with the attack's balls (recorded in its options unless the default ones)."""
    from prunemip.study.mip_cost import DEFAULT_BALLS

    balls = tuple((p.norm, p.radius) for p in perturbations)
    if method.name != AUTO or sorted(balls) == sorted(DEFAULT_BALLS):
        return method
    return StudyMethod(method.name, method.sparsities, {**method.options, "balls": balls})


def _perturbations(reader: _Reader) -> tuple[Perturbation, ...]:
    raw = reader.get("perturbations", list, [{"norm": "linf", "radius": 0.05}])
    if not raw:
        raise PrunemipError(f"config: {reader.where('perturbations')} must not be empty")
    out = []
    for index, table in enumerate(raw):
        if not isinstance(table, dict):
            raise PrunemipError(f"config: {reader.where('perturbations')}[{index}] must be a table")
        item = _Reader(table, f"{reader.where('perturbations')}[{index}]")
        norm = _choice(item, "norm", BALL_NORMS, "linf")
        radius = item.get("radius", float, required=True)
        if radius < 0:
            raise PrunemipError(f"config: {item.where('radius')} must be >= 0, got {radius}")
        item.finish()
        out.append(Perturbation(norm, radius))
    return tuple(out)


def parse_config(data: dict[str, Any], known_methods: tuple[str, ...] | None = None) -> StudyConfig:
    """Validate a parsed TOML document; method names are checked against ``known_methods``
    (default: prunemip's pruning registry, the dense baseline being implicit).

    Args:
        data: the document, as ``tomllib`` parsed it.
        known_methods: the method names a study may list.

    Returns:
        The study's configuration.

    Raises:
        PrunemipError: for a missing, unknown or out-of-range entry (the message names it).
    """
    if known_methods is None:
        from prunemip.pruning.registry import method_names

        known_methods = tuple(name for name in method_names() if name != "dense")
    root = _Reader(data, "")
    name = root.get("name", str, required=True)
    description = root.get("description", str, "")
    data_table = root.table_at("data")
    dataset = data_table.get("dataset", str, required=True)
    data_dir = data_table.get("data_dir", str, None)
    split_seed = data_table.get("split_seed", int, 0)
    data_table.finish()

    architectures = tuple(parse_arch(text) for text in root.number_list("architectures", str, ()))
    methods = _methods(root.get("methods", list, []))
    for index, method in enumerate(methods):
        if method.name not in (*known_methods, AUTO):
            raise PrunemipError(
                f"config: methods[{index}].name {method.name!r} is not a pruning method; "
                f"choose one of {', '.join((*known_methods, AUTO))}"
            )

    train = root.table_at("training")
    training = TrainingSpec(
        epochs=train.get("epochs", int, TrainingSpec.epochs),
        finetune_epochs=train.get("finetune_epochs", int, TrainingSpec.finetune_epochs),
        batch_size=train.get("batch_size", int, TrainingSpec.batch_size),
        lr=train.get("lr", float, TrainingSpec.lr),
        optimizer=_choice(train, "optimizer", OPTIMIZERS, TrainingSpec.optimizer),
        seeds=train.number_list("seeds", int, TrainingSpec.seeds),
    )
    _positive(train, "lr", training.lr)
    _positive(train, "batch_size", training.batch_size)
    if training.epochs < 0 or training.finetune_epochs < 0:
        raise PrunemipError("config: training.epochs and training.finetune_epochs must be >= 0")
    train.finish()

    section = root.table_at("attack")
    attack = AttackSpec(
        images=section.get("images", int, AttackSpec.images),
        perturbations=_perturbations(section),
        target=_choice(section, "target", TARGET_RULES, AttackSpec.target),
        mode=_choice(section, "mode", MODES, AttackSpec.mode),
        time_limit=section.get("time_limit", float, AttackSpec.time_limit),
        bounds=_choice(section, "bounds", (DEFAULT_BOUNDS, *BOUNDS_METHODS), AttackSpec.bounds),
        gradient_attack=section.get("gradient_attack", bool, AttackSpec.gradient_attack),
        surrogate=section.get("surrogate", bool, AttackSpec.surrogate),
        solver_seeds=section.number_list("solver_seeds", int, AttackSpec.solver_seeds),
    )
    _positive(section, "images", attack.images)
    _positive(section, "time_limit", attack.time_limit)
    section.finish()
    root.finish()
    methods = tuple(_with_balls(method, attack.perturbations) for method in methods)
    return StudyConfig(
        name, dataset, data_dir, split_seed, architectures, methods, training, attack, description
    )


def load_config(path: str | Path, known_methods: tuple[str, ...] | None = None) -> StudyConfig:
    """Read and validate a study TOML file.

    Args:
        path: the ``.toml`` file.
        known_methods: the method names a study may list (default: see :func:`parse_config`).

    Returns:
        The study's configuration.

    Raises:
        PrunemipError: for a missing file, invalid TOML or an invalid entry.
    """
    text = read_text(path, "config file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PrunemipError(f"config {Path(path).name}: {error}") from None
    return parse_config(data, known_methods)
