"""prunemip: prune ReLU networks and encode them as small, tightly bounded big-M MIPs.

The framework-free :class:`~prunemip.network.Network` joins the halves of the tool:
training and pruning (torch, :mod:`prunemip.pruning`) on one side; neuron bounds and the
big-M formulation (:mod:`prunemip.encoders`), HiGHS and bound tightening
(:mod:`prunemip.solvers`), adversarial search and verification (:mod:`prunemip.engine`)
and embedding in the user's own model (:mod:`prunemip.embed`) on the other. The map of
the code is ``docs/architecture.md``.

The names a user needs are importable from here::

    import prunemip as pm

    network = pm.load_network("model.onnx")
    region = pm.InputRegion.ball("linf", x0, 0.05, 0.0, 1.0)
    bounds = pm.compute_bounds(network, region, "lp")
    result = pm.solve(pm.encode(network, region, bounds).with_margin_objective(3, 7))
    attack = pm.find_adversarial_example(network, x0, label=7, norm="linf", radius=0.05)

Everything beyond the core types loads on first use (PEP 562), so ``import prunemip`` and
the command line stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network
from prunemip.regions import InputRegion

__version__ = "0.1.0"

#: Each lazily exported name and the module that defines it.
_LAZY: dict[str, str] = {
    "load_network": "prunemip.model_io",
    "save_network": "prunemip.model_io",
    "save_model": "prunemip.model_io",
    "load_vnnlib": "prunemip.vnnlib",
    "NeuronBounds": "prunemip.encoders.bounds.interval",
    "interval_bounds": "prunemip.encoders.bounds.interval",
    "witnessed_unstable": "prunemip.encoders.bounds.witnesses",
    "compute_bounds": "prunemip.solvers.bounds",
    "ObbtOptions": "prunemip.solvers.bounds",
    "encode": "prunemip.encoders.bigm",
    "MipModel": "prunemip.encoders.mip_model",
    "simplify": "prunemip.encoders.simplify",
    "write_model": "prunemip.encoders.writers",
    "solve": "prunemip.solvers.highs",
    "HighsOptions": "prunemip.solvers.highs",
    "DecisionRule": "prunemip.solvers.highs",
    "SolveResult": "prunemip.solvers.result",
    "SolveStatus": "prunemip.solvers.result",
    "find_adversarial_example": "prunemip.engine.attack",
    "AttackOptions": "prunemip.engine.attack",
    "AttackResult": "prunemip.engine.results",
    "verify": "prunemip.engine.verify",
    "VerifyOptions": "prunemip.engine.verify",
    "VerifyResult": "prunemip.engine.verify",
    "network_block": "prunemip.embed.pyomo",
    "add_network": "prunemip.embed.highs",
}

__all__ = ["InputRegion", "InputSpec", "Layer", "Network", "PrunemipError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and cache the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prunemip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
