"""What the LP and MIP tightening stages share: options, truncation, progress, the layer loop.

Both stages tighten layer by layer (Fischetti & Jo, *Constraints* 2018; Badilla et al.,
arXiv 2312.16699): for layer ``k`` the network truncated after layer ``k`` — layers
``0 … k−1`` as they are, layer ``k``'s still-unstable neurons as identity outputs — is
encoded by the same :func:`~prunemip.encoders.bigm.encode` as the main MIP, with the
current bounds, and ``min``/``max`` of each output column bounds that neuron's ``ẑ``. After
a layer, the later layers' linear bounds are recomputed from the tightened ones. A stage
differs only in how it tightens one layer (:data:`LayerTightener`).

Every point of the region (its centre, attack points, witnesses) is feasible in every
relaxation of a layer, so its pre-activations are values each ``min``/``max`` can reach
(:func:`seen_values`); a side with no seen value beyond 0 is one that could make its neuron
stable (:func:`ordered_sides`). This is Gleixner et al.'s filtering ("Three enhancements for
optimization-based bound tightening", *J. Global Optim.* 67, 2017).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from prunemip import interrupts
from prunemip.encoders.bigm import encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.bounds.linear import linear_bounds
from prunemip.encoders.mip_model import MipModel
from prunemip.errors import PrunemipError
from prunemip.network import Layer, Network
from prunemip.regions import InputRegion

#: The LP formulation of OBBT: ẑ as a column, which has fewer nonzeros than substituting it
#: and solved the LPs faster (``experiments/benchmarks/obbt_lp_settings.py``; figures in
#: ``experiments/benchmarks/README.md``).
LP_FORMULATION = "variable"


@dataclass(frozen=True)
class ObbtOptions:
    """Limits and switches of LP/MIP-based tightening."""

    time_per_lp: float = 2.0  #: seconds per LP (HiGHS time limit); an LP cut short tightens nothing
    budget: float = math.inf  #: seconds for the whole stage; bounds found so far are kept
    formulation: str = LP_FORMULATION
    filter_tolerance: float = 0.02  #: skip a side within this fraction of the width from a seen value
    mip_layers: int = 1  #: MIP-based tightening: how many of the last hidden layers
    time_per_mip: float = 10.0
    #: MIP stage: only the sides that could make a neuron stable (each MIP stopped once the sign
    #: is known); False also narrows the other sides, each MIP to optimality
    mip_stability_only: bool = False
    threads: int | None = 1
    #: HiGHS's simplex strategy for the LPs: 1 is the dual simplex, faster than the primal (4)
    #: on the benchmark (``obbt_lp_settings.py``)
    simplex_strategy: int = 1
    #: LP stage: rounds of ideal-formulation cuts per LP (``encoders.ideal_cuts``; Anderson et al.
    #: 2020), each re-solved from the last basis; 0 keeps the big-M (triangle) relaxation alone
    cut_rounds: int = 0
    cuts_per_round: int = 20  #: the most violated cuts added per round (each row is as dense as a ẑ row)
    #: polled between LPs/MIPs: True ends the stage as its budget does (the bounds so far are kept)
    cancel: Callable[[], bool] | None = None


#: A neuron side to bound: (local neuron index, +1 for min ẑ / −1 for min −ẑ).
Side = tuple[int, int]


@dataclass
class Progress:
    """Counters of one tightening stage."""

    deadline: float
    cancel: Callable[[], bool] | None = None  #: :attr:`ObbtOptions.cancel`
    solved: int = 0
    skipped: int = 0
    not_optimal: int = 0
    stabilized: int = 0
    unencodable: int = 0  #: layers skipped: their relaxation has numerically meaningless big-M values
    cuts: int = 0  #: ideal-formulation rows added (LP stage with ``cut_rounds``)
    undecided: int = 0  #: MIP stage: stability MIPs stopped by their time limit before the sign was known
    budget_exhausted: bool = False

    def out_of_time(self) -> bool:
        """Past the deadline, Ctrl-C asked to stop, or the caller cancelled the stage."""
        if interrupts.stopping(self.cancel) or time.perf_counter() >= self.deadline:
            self.budget_exhausted = True
        return self.budget_exhausted

    def details(self, prefix: str) -> dict[str, object]:
        """The counters as a stage's details.

        Args:
            prefix: the counters' prefix (``"lps"`` or ``"mips"``).

        Returns:
            ``{prefix}_solved`` etc., with the optional counters only when nonzero.
        """
        return {
            f"{prefix}_solved": self.solved,
            f"{prefix}_skipped": self.skipped,
            f"{prefix}_not_optimal": self.not_optimal,
            "stabilized": self.stabilized,
            "budget_exhausted": self.budget_exhausted,
            **({"layers_skipped": self.unencodable} if self.unencodable else {}),
            **({"cuts": self.cuts} if self.cuts else {}),
            **({f"{prefix}_undecided": self.undecided} if self.undecided else {}),
        }


def truncated_network(
    network: Network, bounds: NeuronBounds, layer: int, rows: np.ndarray
) -> tuple[Network, NeuronBounds]:
    """The network cut after ``layer``, its neurons ``rows`` as identity outputs.

    Args:
        network: the whole network.
        bounds: its neuron bounds.
        layer: the layer to cut after.
        rows: the neurons of ``layer`` to keep.

    Returns:
        Layers ``0 … layer−1`` plus ``rows`` of ``layer``, and the bounds restricted to them.
    """
    target = network.layers[layer]
    head = Layer.create(target.weight[rows], target.bias[rows], "identity")
    truncated = Network((*network.layers[:layer], head), network.input_spec)
    restricted = NeuronBounds(
        input_lower=bounds.input_lower,
        input_upper=bounds.input_upper,
        lower=(*bounds.lower[:layer], bounds.lower[layer][rows]),
        upper=(*bounds.upper[:layer], bounds.upper[layer][rows]),
        relu_layers=(*bounds.relu_layers[:layer], False),
        method=bounds.method,
        seconds=0.0,
    )
    return truncated, restricted


def _layer_model(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    layer: int,
    options: ObbtOptions,
    progress: Progress,
) -> tuple[np.ndarray, MipModel | None]:
    """The unstable neurons of ``layer`` and the MIP of the network truncated to them
    (None when none is unstable, or when its big-M values are beyond solver precision)."""
    rows = np.flatnonzero(bounds.unstable(layer))
    if rows.size == 0:
        return rows, None
    truncated, restricted = truncated_network(network, bounds, layer, rows)
    try:
        return rows, encode(truncated, region, restricted, formulation=options.formulation)
    except PrunemipError:  # keep the bounds as they are
        progress.unencodable += 1
        return rows, None


def apply_bound(
    lower: np.ndarray, upper: np.ndarray, neuron: int, side: float, bound: float, progress: Progress
) -> None:
    """Tighten with a sound ``bound``: of ``ẑ`` from below (``side`` > 0) or of ``−ẑ`` (< 0).

    A bound that would cross the other side stops at it; a neuron made stable counts in
    ``progress.stabilized``.

    Args:
        lower: the layer's lower bounds, updated in place.
        upper: the layer's upper bounds, updated in place.
        neuron: the neuron's index in the layer.
        side: > 0 when ``bound`` is a lower bound of ``ẑ``, < 0 when it bounds ``−ẑ`` from below.
        bound: the sound bound found.
        progress: the stage's counters.
    """
    was_unstable = lower[neuron] < 0.0 < upper[neuron]
    if side > 0 and bound > lower[neuron]:
        lower[neuron] = min(bound, upper[neuron])
    elif side < 0 and -bound < upper[neuron]:
        upper[neuron] = max(-bound, lower[neuron])
    if was_unstable and not (lower[neuron] < 0.0 < upper[neuron]):
        progress.stabilized += 1


def ordered_sides(seen_min: np.ndarray, seen_max: np.ndarray) -> tuple[list[Side], list[Side]]:
    """The neuron sides that could make their neuron stable (no seen value beyond 0 on that
    side), then the others; lower sides before upper ones, so that consecutive objectives
    stay alike.

    Args:
        seen_min: per neuron, the least pre-activation seen at region points.
        seen_max: per neuron, the largest one.

    Returns:
        ``(stabilizing, rest)``, lists of ``(neuron, side)`` (side +1: min ẑ, −1: min −ẑ).
    """
    lows, highs = seen_min >= 0, seen_max <= 0
    stabilizing = [(int(j), 1) for j in np.flatnonzero(lows)] + [(int(j), -1) for j in np.flatnonzero(highs)]
    rest = [(int(j), 1) for j in np.flatnonzero(~lows)] + [(int(j), -1) for j in np.flatnonzero(~highs)]
    return stabilizing, rest


def _with_layer(bounds: NeuronBounds, layer: int, lower: np.ndarray, upper: np.ndarray) -> NeuronBounds:
    lows, highs = list(bounds.lower), list(bounds.upper)
    lows[layer], highs[layer] = lower, upper
    return replace(bounds, lower=tuple(lows), upper=tuple(highs))


def hidden_relu_layers(bounds: NeuronBounds) -> list[int]:
    """The hidden ReLU layers (the output layer excluded).

    Args:
        bounds: neuron bounds of the network.

    Returns:
        Their indices, ascending.
    """
    return [k for k, relu in enumerate(bounds.relu_layers[:-1]) if relu]


#: Tightens one layer's (lower, upper) in place at its unstable ``rows``, given the MIP of the
#: network truncated to them and the layer's pre-activations at region points (one row a
#: point): ``(model, rows, lower, upper, options, progress, seen)``.
LayerTightener = Callable[
    [MipModel, np.ndarray, np.ndarray, np.ndarray, ObbtOptions, Progress, np.ndarray], None
]


def tighten_layers(
    network: Network,
    region: InputRegion,
    bounds: NeuronBounds,
    layers: Sequence[int],
    options: ObbtOptions,
    stage: str,
    tighten_layer: LayerTightener,
    seen: Sequence[np.ndarray],
) -> NeuronBounds:
    """Tighten ``layers`` in order, each followed by linear bounds of the later layers, as
    one stage named ``stage`` (counters prefixed ``lps``/``mips``) within ``options.budget``.

    Args:
        network: the network.
        region: the input region.
        bounds: sound bounds to start from.
        layers: the layers to tighten, in order.
        options: the limits and switches.
        stage: the stage's name (``"lp"`` or ``"mip"``).
        tighten_layer: tightens one layer (see :data:`LayerTightener`).
        seen: each layer's pre-activations at region points (:func:`seen_values`).

    Returns:
        ``bounds`` tightened, with the stage appended.
    """
    start = time.perf_counter()
    progress = Progress(deadline=start + options.budget, cancel=options.cancel)
    current = bounds
    for k in layers:
        if progress.out_of_time():
            break
        lower, upper = current.lower[k].copy(), current.upper[k].copy()
        rows, model = _layer_model(network, region, current, k, options, progress)
        if model is not None:
            tighten_layer(model, rows, lower, upper, options, progress, seen[k])
        current = linear_bounds(network, region, _with_layer(current, k, lower, upper), start_layer=k + 1)
    seconds = time.perf_counter() - start
    return bounds.tightened(current.lower, current.upper, stage, seconds, **progress.details(f"{stage}s"))


def seen_values(network: Network, region: InputRegion, points: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per layer, the pre-activations at the region's centre and at ``points`` projected onto
    the region (one row a point).

    Args:
        network: the network.
        region: the input region.
        points: inputs (projected onto ``region`` first).

    Returns:
        One array per layer, shape ``(1 + len(points), n_out)``.
    """
    inputs = [region.midpoint, *(region.project(np.asarray(p, dtype=np.float64).reshape(-1)) for p in points)]
    return [np.atleast_2d(z) for z in network.pre_activations(np.vstack(inputs))]
