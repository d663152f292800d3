"""Dimensionality-reduced training: masks, scores, allocations, the pruning families, freezing.

Torch-free on import (the CLI reads the method names without loading torch). The
modules:

* :mod:`~prunemip.pruning.registry` — the one registry of pruning and freezing methods;
* :mod:`~prunemip.pruning.config` — training and pruning hyper-parameters;
* :mod:`~prunemip.pruning.masks` — the :class:`~prunemip.pruning.masks.Masks` container
  (the single source of truth for zero, frozen and trainable entries), enforcement
  through optimizer steps, collapse checks;
* :mod:`~prunemip.pruning.allocation` — global, layer-wise, uniform and ERK allocation;
* :mod:`~prunemip.pruning.scores` — random, magnitude, SNIP, GraSP, SynFlow;
* :mod:`~prunemip.pruning.imp` — iterative magnitude pruning (lottery tickets);
* :mod:`~prunemip.pruning.dst` — SET and RigL;
* :mod:`~prunemip.pruning.gmp` — gradual magnitude pruning;
* :mod:`~prunemip.pruning.structured` — neuron pruning and group lasso;
* :mod:`~prunemip.pruning.freezing` — weights frozen at initialisation (random, FreezeNet,
  whole layers);
* :mod:`~prunemip.pruning.regularizers` — L1 and the ReLU-stability loss;
* :mod:`~prunemip.pruning.pipeline` — one resumable run of a method, end to end.
"""

from prunemip.pruning.registry import (
    ALLOCATIONS,
    FREEZERS,
    METHODS,
    FreezeSpec,
    MethodSpec,
    freeze_spec,
    method_names,
    method_spec,
)

__all__ = [
    "ALLOCATIONS",
    "FREEZERS",
    "METHODS",
    "FreezeSpec",
    "MethodSpec",
    "freeze_spec",
    "method_names",
    "method_spec",
]
