"""Dimensionality-reduced training: masks, scores, allocations, the pruning families, freezing.

Torch-free on import (the CLI reads the method names without loading torch). The
modules:

* :mod:`~prunemip.pruning.registry` — the one registry of pruning and freezing methods;
* :mod:`~prunemip.pruning.config` — training and pruning hyper-parameters;
* :mod:`~prunemip.pruning.masks` — the :class:`~prunemip.pruning.masks.Masks` container
  (the single source of truth for zero, frozen and trainable entries), enforcement
  through optimizer steps, collapse checks;
* :mod:`~prunemip.pruning.allocation` — global, layer-wise, uniform and ERK allocation, and
  the one ranking that keeps the highest scores (numpy; shared by the torch masks and
  :mod:`~prunemip.pruning.sparsify`);
* :mod:`~prunemip.pruning.scores` — random, magnitude, SNIP, GraSP, SynFlow;
* :mod:`~prunemip.pruning.imp` — iterative magnitude pruning (lottery tickets);
* :mod:`~prunemip.pruning.dst` — SET and RigL;
* :mod:`~prunemip.pruning.gmp` — gradual magnitude pruning;
* :mod:`~prunemip.pruning.structured` — neuron pruning and group lasso;
* :mod:`~prunemip.pruning.freezing` — weights frozen at initialisation (random, FreezeNet,
  whole layers);
* :mod:`~prunemip.pruning.regularizers` — L1 and the ReLU-stability loss;
* :mod:`~prunemip.pruning.training` — the training loop under masks;
* :mod:`~prunemip.pruning.runs` — run directories and resumable steps;
* :mod:`~prunemip.pruning.context` — a run in progress, as each method's runner sees it;
* :mod:`~prunemip.pruning.methods` — each family's training schedule (the runners);
* :mod:`~prunemip.pruning.export` — W ⊙ M to a float64 :class:`~prunemip.network.Network`;
* :mod:`~prunemip.pruning.summary` — sizes, compression and speed-up of a run;
* :mod:`~prunemip.pruning.pipeline` — one resumable run of a method, end to end
  (``prunemip train`` and ``prunemip prune``);
* :mod:`~prunemip.pruning.sparsify` — data-free magnitude pruning of an exported network
  (torch-free).
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
