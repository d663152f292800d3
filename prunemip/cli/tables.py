"""Terminal tables (rich) for networks, encoded MIPs, attacks and the demo."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from prunemip.encoders.mip_model import MipModel, NeuronStatus
from prunemip.engine.attack import AttackResult
from prunemip.network import Network


def network_table(network: Network) -> Table:
    """Shape, nonzeros and sparsity per layer.

    Args:
        network: the network.

    Returns:
        The table, titled with the architecture and overall sparsity.
    """
    table = Table(
        title=(
            f"Network {network.architecture}: {network.nnz} nonzero weights, sparsity {network.sparsity:.1%}"
        )
    )
    for column in ("layer", "shape", "activation", "nnz", "sparsity", "no inputs", "no outputs"):
        table.add_column(column, justify="right")
    for row in network.summary():
        table.add_row(
            str(row.index + 1),
            f"{row.n_in}→{row.n_out}",
            row.activation,
            str(row.nnz),
            f"{row.sparsity:.1%}",
            str(row.neurons_without_inputs),
            str(row.neurons_without_outputs),
        )
    return table


_STATUS_COLUMNS = (
    ("active", NeuronStatus.ACTIVE),
    ("inactive", NeuronStatus.INACTIVE),
    ("unstable", NeuronStatus.UNSTABLE),
    ("constant", NeuronStatus.CONSTANT),
    ("removed", NeuronStatus.REMOVED),
)


def encoding_table(model: MipModel) -> Table:
    """Per layer: weights and how the encoder treated each neuron; then the MIP's size.

    Args:
        model: the encoded MIP.

    Returns:
        The table, titled with the MIP's size, its caption the bounds and build times.
    """
    stats = model.stats
    table = Table(
        title=(
            f"MIP over {model.region.describe()}: {stats.rows} rows, {stats.columns} columns, "
            f"{stats.nonzeros} nonzeros, {stats.binaries} binaries ({model.formulation} ẑ)"
        ),
        caption=(
            f"bounds ({stats.bounds_method}) {stats.bounds_seconds * 1e3:.1f} ms, "
            f"build {stats.build_seconds * 1e3:.1f} ms, Σ big-M width {stats.total_bigm_width:.4g}"
        ),
    )
    for column in ("layer", "neurons", "weights nnz", *(name for name, _ in _STATUS_COLUMNS), "binaries"):
        table.add_column(column, justify="right")
    for index, (encoding, layer) in enumerate(zip(model.layers, model.network.layers, strict=True)):
        counts = [str(encoding.count(status)) for _, status in _STATUS_COLUMNS]
        is_relu = layer.activation == "relu"
        table.add_row(
            str(index + 1),
            str(layer.n_out),
            str(layer.nnz),
            *(counts if is_relu else ["—"] * len(counts)),
            str(int((encoding.binary_column >= 0).sum())),
        )
    return table


def bounds_table(stages: Sequence[dict[str, object]]) -> Table:
    """Per bounds stage, cheapest first: time, unstable ReLUs and Σ(u − l) over them.

    Args:
        stages: the stages' figures (``method``, ``seconds``, ``unstable``, ``total_width``,
            anything else shown as notes).

    Returns:
        The table.
    """
    table = Table(title="Neuron bounds by stage")
    for column in ("stage", "seconds", "unstable", "Σ(u − l)", "notes"):
        table.add_column(column, justify="right")
    standard = {"method", "seconds", "unstable", "total_width"}
    for stage in stages:
        notes = ", ".join(f"{key} {value}" for key, value in stage.items() if key not in standard)
        table.add_row(
            str(stage["method"]),
            f"{float(stage['seconds']):.3f}",  # type: ignore[arg-type]
            str(stage["unstable"]),
            f"{float(stage['total_width']):.4g}",  # type: ignore[arg-type]
            notes,
        )
    return table


def attack_table(result: AttackResult) -> Table:
    """One line per target MIP of an attack.

    Args:
        result: the attack's result.

    Returns:
        The table, titled with the attack's status, mode and region.
    """
    table = Table(
        title=f"{result.status} (label {result.label}, {result.mode} mode, {result.region.describe()})",
    )
    for column in (
        "target",
        "outcome",
        "MIP margin",
        "dual bound",
        "verified margin",
        "nodes",
        "solve s",
        "HiGHS",
    ):
        table.add_column(column, justify="right")
    for outcome in result.targets:
        solve = outcome.solve
        table.add_row(
            str(outcome.target),
            outcome.status,
            _number(solve.objective),
            _number(solve.dual_bound),
            _number(None if outcome.witness is None else outcome.witness.margin),
            str(solve.nodes),
            f"{solve.solve_seconds:.2f}",
            solve.status.value,
        )
    return table


def demo_table(rows: Sequence[dict[str, object]]) -> Table:
    """The dense-vs-pruned comparison printed by ``prunemip demo``.

    Args:
        rows: the dense and the pruned model's rows (``row()`` of each demo report).

    Returns:
        The table.
    """
    table = Table(title="Dense vs pruned: the same test images attacked with HiGHS")
    headers = (
        "model",
        "accuracy",
        "nnz",
        "unstable",
        "binaries",
        "build s",
        "solve s",
        "nodes",
        "adv / robust / t-o",
        "found",
    )
    for column in headers:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["model"]),
            f"{row['accuracy']:.3f}",
            str(row["nnz"]),
            f"{row['unstable']:.1f}",
            f"{row['binaries']:.1f}",
            f"{row['build_s']:.3f}",
            f"{row['solve_s']:.2f}",
            str(row["nodes"]),
            f"{row['adversarial']} / {row['robust']} / {row['timeout']}",
            f"{row['found']}/{row['images']}",
        )
    return table


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"
