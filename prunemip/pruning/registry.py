"""The one registry of pruning and freezing methods, chosen by name (torch-free).

Each pruning entry names a method, its family (which decides the training schedule run
by :mod:`prunemip.pruning.methods`), a one-line summary, the :class:`PruneConfig`
fields it reads, and whether ``prunemip prune`` can apply it to an already-trained
model. The mask logic of each family lives in its own module (``scores``, ``imp``,
``dst``, ``gmp``, ``structured``).

The freezing entries (:data:`FREEZERS`) choose which weights keep their initial values
untrained (:mod:`prunemip.pruning.freezing`); they combine with the families whose
masks are fixed before training starts (:data:`FREEZE_FAMILIES`).
"""

from __future__ import annotations

from dataclasses import dataclass

from prunemip.errors import PrunemipError

ALLOCATIONS: tuple[str, ...] = ("global", "layer", "uniform", "erk")
#: Families whose masks are fixed at initialisation: only these keep frozen weights at θ₀
#: (IMP rewinds and re-prunes trained weights, SET/RigL/GMP change masks while training,
#: the structured methods prune a trained network).
FREEZE_FAMILIES: tuple[str, ...] = ("dense", "pai")

_TARGET = ("sparsity", "prune_output")
_SCORED = (*_TARGET, "allocation")
_IMP = (*_TARGET, "imp_fraction", "imp_rounds", "rewind_iteration")
_DST = (*_SCORED, "drop_fraction", "update_interval", "dst_end")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    ``run_as`` names the method whose run directory this one shares (the lottery-ticket
    controls are branches of an IMP run, as in open_lth). ``default_allocation`` is
    ``None`` where the allocation is fixed by the method; ``trained_allocation`` is the
    default for ``prunemip prune`` on a trained model where it differs.
    """

    name: str
    family: str
    summary: str
    hparams: tuple[str, ...] = ()
    post_training: bool = False
    default_allocation: str | None = None
    trained_allocation: str | None = None
    run_as: str | None = None


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("dense", "dense", "no pruning (the baseline)"),
        MethodSpec(
            "random",
            "pai",
            "random mask at initialisation",
            _SCORED,
            post_training=True,
            default_allocation="global",
        ),
        # At initialisation |w| ~ U(±1/√fan_in): a global ranking compares layers on different
        # scales and empties the widest one (layer collapse, Tanaka et al. 2020), so each layer
        # ranks its own weights, as in Frankle & Carbin 2019 for small networks; trained weights
        # share one scale and are ranked globally.
        MethodSpec(
            "magnitude",
            "pai",
            "|w| (at initialisation; on a trained model with `prune`)",
            _SCORED,
            post_training=True,
            default_allocation="layer",
            trained_allocation="global",
        ),
        MethodSpec(
            "snip",
            "pai",
            "SNIP |g ⊙ w| on one mini-batch (Lee et al. 2019)",
            (*_SCORED, "score_per_class"),
            post_training=True,
            default_allocation="global",
        ),
        MethodSpec(
            "grasp",
            "pai",
            "GraSP: remove the largest −θ ⊙ Hg (Wang et al. 2020)",
            (*_SCORED, "score_per_class", "grasp_temperature"),
            post_training=True,
            default_allocation="global",
        ),
        MethodSpec(
            "synflow",
            "pai",
            "iterative data-free synaptic flow (Tanaka et al. 2020)",
            (*_SCORED, "synflow_iterations"),
            post_training=True,
            default_allocation="global",
        ),
        MethodSpec("imp", "imp", "iterative magnitude pruning with rewinding (Frankle & Carbin 2019)", _IMP),
        MethodSpec(
            "imp-reinit",
            "imp",
            "lottery control: IMP's final mask, re-initialised weights",
            _IMP,
            run_as="imp",
        ),
        MethodSpec(
            "imp-random",
            "imp",
            "lottery control: random mask with IMP's per-layer counts",
            _IMP,
            run_as="imp",
        ),
        MethodSpec(
            "set",
            "dst",
            "SET: magnitude drop, random growth (Mocanu et al. 2018)",
            _DST,
            default_allocation="erk",
        ),
        MethodSpec(
            "rigl",
            "dst",
            "RigL: magnitude drop, dense-gradient growth (Evci et al. 2020)",
            _DST,
            default_allocation="erk",
        ),
        MethodSpec(
            "gmp",
            "gmp",
            "gradual magnitude pruning, cubic schedule (Zhu & Gupta 2018)",
            (*_SCORED, "gmp_begin", "gmp_end", "update_interval"),
            default_allocation="global",
        ),
        MethodSpec(
            "neuron-magnitude",
            "structured",
            "remove neurons with the smallest ‖W[j,:]‖₂, fine-tune",
            (*_TARGET, "finetune_epochs"),
            post_training=True,
        ),
        MethodSpec(
            "neuron-random",
            "structured",
            "structured control: remove random neurons, fine-tune",
            (*_TARGET, "finetune_epochs"),
            post_training=True,
        ),
        MethodSpec(
            "group-lasso",
            "structured",
            "proximal group lasso on neurons (Wen et al. 2016), then neuron pruning and fine-tuning",
            (*_TARGET, "finetune_epochs", "group_lasso"),
        ),
    )
}


@dataclass(frozen=True)
class FreezeSpec:
    """A registered freezing method: how the weights kept at their initial values are chosen."""

    name: str
    summary: str


FREEZERS: dict[str, FreezeSpec] = {
    spec.name: spec
    for spec in (
        FreezeSpec("random", "freeze a uniformly random fraction of the weights at their initial values"),
        FreezeSpec(
            "snip",
            "FreezeNet: freeze the weights of smallest SNIP saliency |g ⊙ w|, train the rest "
            "(Wimmer et al. 2020)",
        ),
    )
}


def method_names() -> list[str]:
    return list(METHODS)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``.

    Args:
        name: a key of :data:`METHODS`.

    Returns:
        Its spec.

    Raises:
        PrunemipError: for an unknown name (the message lists the names).
    """
    try:
        return METHODS[name]
    except KeyError:
        raise PrunemipError(f"unknown pruning method {name!r}; choose one of {', '.join(METHODS)}") from None


def freeze_spec(name: str) -> FreezeSpec:
    """The registered freezing method ``name``.

    Args:
        name: a key of :data:`FREEZERS`.

    Returns:
        Its spec.

    Raises:
        PrunemipError: for an unknown name (the message lists the names).
    """
    try:
        return FREEZERS[name]
    except KeyError:
        raise PrunemipError(
            f"unknown freezing method {name!r}; choose one of {', '.join(FREEZERS)}"
        ) from None
