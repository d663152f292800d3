"""The pruning summary of a run: per-layer sizes, compression and theoretical speed-up.

Metrics follow ShrinkBench (Blalock et al., *What is the state of neural network
pruning?*, MLSys 2020): compression ratio = size / size_nz and theoretical speed-up =
flops / flops_nz. Here ``size`` counts every weight and bias of the original dense
architecture and ``size_nz`` the nonzero weights and biases of the exported network
(removed neurons count as zero); ``flops`` counts the multiply-adds of the dense
weight matrices for one input and ``flops_nz`` those of the exported nonzero weights
(biases and ReLUs are not counted).

Dimensionality-reduced training (pruning and freezing): per layer, the parameters
(weights and biases of the dense architecture) that were ``trainable``, ``frozen`` at
their initial values, or ``zero`` (pruned) during training, from the masks. The
*weight-gradient saving* is (frozen + zero weights) / all weights: the share of the
per-example weight-gradient products ∂L/∂w_ji = δ_j·x_i that training needs no more.
It is a count, like the theoretical speed-up, not a measured time: PyTorch computes a
layer's weight gradient densely and masks it unless the whole layer is frozen (then
autograd skips it), and the backward pass through activations (δ) is never saved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.table import Table

from prunemip.network import Network

if TYPE_CHECKING:
    from prunemip.pruning.masks import Masks


@dataclass(frozen=True)
class LayerSummary:
    """One linear layer before and after pruning and export."""

    index: int
    dense_shape: tuple[int, int]
    exported_shape: tuple[int, int]
    nnz: int
    prunable: bool
    trainable: int
    frozen: int
    zero: int
    weights_untrained: int

    @property
    def density(self) -> float:
        return self.nnz / (self.dense_shape[0] * self.dense_shape[1])

    @property
    def neurons_removed(self) -> int:
        return self.dense_shape[1] - self.exported_shape[1]


@dataclass(frozen=True)
class PruningSummary:
    """What ``prunemip train`` / ``prunemip prune`` print at the end."""

    method: str
    target_sparsity: float
    sparsity: float
    layers: tuple[LayerSummary, ...]
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

    @property
    def gradient_saving(self) -> float:
        """(frozen + zero weights) / all weights of the dense architecture."""
        return sum(layer.weights_untrained for layer in self.layers) / self.flops

    def parameter_totals(self) -> dict[str, int]:
        """Trainable, frozen and zero weights and biases over all layers."""
        keys = ("trainable", "frozen", "zero")
        return {key: sum(getattr(layer, key) for layer in self.layers) for key in keys}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [
            {**asdict(layer), "density": layer.density, "neurons_removed": layer.neurons_removed}
            for layer in self.layers
        ]
        data["compression_ratio"] = self.compression_ratio
        data["theoretical_speedup"] = self.theoretical_speedup
        data["parameters"] = self.parameter_totals()
        data["weight_gradients_saved"] = self.gradient_saving
        return data

    def table(self) -> Table:
        table = Table(title=f"Pruning report: {self.method}, target sparsity {self.target_sparsity:.1%}")
        columns = (
            "layer",
            "dense shape",
            "exported",
            "nnz",
            "density",
            "neurons removed",
            "prunable",
            "trainable",
            "frozen",
            "zero",
        )
        for column in columns:
            table.add_column(column, justify="right")
        for layer in self.layers:
            last = layer.index == len(self.layers) - 1
            shapes = ("→".join(map(str, layer.dense_shape)), "→".join(map(str, layer.exported_shape)))
            table.add_row(
                str(layer.index + 1),
                *shapes,
                str(layer.nnz),
                f"{layer.density:.1%}",
                "-" if last else str(layer.neurons_removed),
                "yes" if layer.prunable else "no",
                *(str(count) for count in (layer.trainable, layer.frozen, layer.zero)),
            )
        return table

    def summary_lines(self) -> list[str]:
        lines = [
            f"sparsity of the prunable layers {self.sparsity:.2%}; nonzero weights {self.flops_nz} of "
            f"{self.flops}",
            f"compression ratio {self.compression_ratio:.2f}x (all weights and biases: {self.size} / "
            f"{self.size_nz} nonzero); theoretical speed-up {self.theoretical_speedup:.2f}x "
            "(weight multiply-adds per input, dense / nonzero)",
            "parameters trained {trainable}, frozen {frozen}, zero {zero}; ".format(**self.parameter_totals())
            + f"weight gradients saved {self.gradient_saving:.1%} (frozen + zero weights / all weights)",
        ]
        if self.accuracy_before_finetune is not None:
            lines.append(f"test accuracy before fine-tuning {self.accuracy_before_finetune:.4f}")
        lines.append(f"test accuracy {self.accuracy:.4f}; time {self.seconds:.1f} s")
        if not self.trained_steps:
            lines.append("every step was already done in the run directory: nothing was retrained")
        return lines


@dataclass(frozen=True)
class RunRecord:
    """What a run reports beside its network and masks: method, target, accuracies, time, steps."""

    method: str
    target_sparsity: float
    accuracy: float
    accuracy_before_finetune: float | None
    seconds: float
    trained_steps: tuple[str, ...]


def pruning_summary(record: RunRecord, network: Network, widths: list[int], masks: Masks) -> PruningSummary:
    """Compare the exported ``network`` with the dense architecture ``widths``.

    Args:
        record: the run's method, target sparsity, accuracies, time and trained steps.
        network: the exported network.
        widths: the dense architecture, inputs to outputs.
        masks: the final masks: the sparsity of the prunable layers, which layers are
            prunable, and per layer the trainable, frozen and zero parameters and the
            untrained weights during training (:meth:`~prunemip.pruning.masks.Masks.parameter_counts`).

    Returns:
        The per-layer sizes, compression ratio and theoretical speed-up with ``record``'s figures.
    """
    dense_shapes = list(pairwise(widths))
    counts = masks.parameter_counts()
    layers = tuple(
        LayerSummary(i, shape, (layer.n_in, layer.n_out), layer.nnz, masks.prunable[i], **count)
        for i, (shape, layer, count) in enumerate(zip(dense_shapes, network.layers, counts, strict=True))
    )
    flops = sum(n_in * n_out for n_in, n_out in dense_shapes)
    biases_nz = sum(int(np.count_nonzero(layer.bias)) for layer in network.layers)
    return PruningSummary(
        method=record.method,
        target_sparsity=record.target_sparsity,
        sparsity=masks.sparsity,
        layers=layers,
        size=flops + sum(widths[1:]),
        size_nz=network.nnz + biases_nz,
        flops=flops,
        flops_nz=network.nnz,
        accuracy=record.accuracy,
        accuracy_before_finetune=record.accuracy_before_finetune,
        seconds=record.seconds,
        trained_steps=record.trained_steps,
    )
