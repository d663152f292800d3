"""The pruning report of a run: per-layer sizes, compression and theoretical speed-up.

Metrics follow ShrinkBench (Blalock et al., *What is the state of neural network
pruning?*, MLSys 2020): compression ratio = size / size_nz and theoretical speed-up =
flops / flops_nz. Here ``size`` counts every weight and bias of the original dense
architecture and ``size_nz`` the nonzero weights and biases of the exported network
(removed neurons count as zero); ``flops`` counts the multiply-adds of the dense
weight matrices for one input and ``flops_nz`` those of the exported nonzero weights
(biases and ReLUs are not counted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from rich.table import Table

from prunemip.network import Network


@dataclass(frozen=True)
class LayerReport:
    """One linear layer before and after pruning and export."""

    index: int
    dense_shape: tuple[int, int]
    exported_shape: tuple[int, int]
    nnz: int
    prunable: bool

    @property
    def density(self) -> float:
        return self.nnz / (self.dense_shape[0] * self.dense_shape[1])

    @property
    def neurons_removed(self) -> int:
        return self.dense_shape[1] - self.exported_shape[1]


@dataclass(frozen=True)
class PruningReport:
    """What ``prunemip train`` / ``prunemip prune`` print at the end."""

    method: str
    target_sparsity: float
    sparsity: float
    layers: tuple[LayerReport, ...]
    size: int
    size_nz: int
    flops: int
    flops_nz: int
    accuracy: float
    accuracy_before_finetune: float | None
    seconds: float
    trained_steps: tuple[str, ...]

    @property
    def compression_ratio(self) -> float:
        return self.size / max(self.size_nz, 1)

    @property
    def theoretical_speedup(self) -> float:
        return self.flops / max(self.flops_nz, 1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [
            {**asdict(layer), "density": layer.density, "neurons_removed": layer.neurons_removed}
            for layer in self.layers
        ]
        data["compression_ratio"] = self.compression_ratio
        data["theoretical_speedup"] = self.theoretical_speedup
        return data

    def table(self) -> Table:
        table = Table(title=f"Pruning report: {self.method}, target sparsity {self.target_sparsity:.1%}")
        for column in ("layer", "dense shape", "exported", "nnz", "density", "neurons removed", "prunable"):
            table.add_column(column, justify="right")
        for layer in self.layers:
            table.add_row(
                str(layer.index + 1), "→".join(map(str, layer.dense_shape)),
                "→".join(map(str, layer.exported_shape)), str(layer.nnz), f"{layer.density:.1%}",
                str(layer.neurons_removed) if layer.index < len(self.layers) - 1 else "-",
                "yes" if layer.prunable else "no",
            )  # fmt: skip
        return table

    def summary_lines(self) -> list[str]:
        lines = [
            f"sparsity of the prunable layers {self.sparsity:.2%}; nonzero weights {self.flops_nz} of "
            f"{self.flops}",
            f"compression ratio {self.compression_ratio:.2f}x (all weights and biases: {self.size} / "
            f"{self.size_nz} nonzero); theoretical speed-up {self.theoretical_speedup:.2f}x "
            "(weight multiply-adds per input, dense / nonzero)",
        ]
        if self.accuracy_before_finetune is not None:
            lines.append(f"test accuracy before fine-tuning {self.accuracy_before_finetune:.4f}")
        lines.append(f"test accuracy {self.accuracy:.4f}; time {self.seconds:.1f} s")
        if not self.trained_steps:
            lines.append("every step was already done in the run directory: nothing was retrained")
        return lines


def pruning_report(
    method: str,
    target_sparsity: float,
    sparsity: float,
    widths: list[int],
    prunable: tuple[bool, ...],
    network: Network,
    accuracy: float,
    accuracy_before_finetune: float | None,
    seconds: float,
    trained_steps: tuple[str, ...],
) -> PruningReport:
    """Compare the exported ``network`` with the dense architecture ``widths``."""
    dense_shapes = list(pairwise(widths))
    layers = tuple(
        LayerReport(i, shape, (layer.n_in, layer.n_out), layer.nnz, prunable[i])
        for i, (shape, layer) in enumerate(zip(dense_shapes, network.layers, strict=True))
    )
    flops = sum(n_in * n_out for n_in, n_out in dense_shapes)
    biases_nz = sum(int(np.count_nonzero(layer.bias)) for layer in network.layers)
    return PruningReport(
        method=method,
        target_sparsity=target_sparsity,
        sparsity=sparsity,
        layers=layers,
        size=flops + sum(widths[1:]),
        size_nz=network.nnz + biases_nz,
        flops=flops,
        flops_nz=network.nnz,
        accuracy=accuracy,
        accuracy_before_finetune=accuracy_before_finetune,
        seconds=seconds,
        trained_steps=trained_steps,
    )
