"""What the Pyomo, OMLT and highspy routes share: the input box, the MIP, its split into host
columns, and :class:`EmbeddedNetwork`, the base class of every route's handle.

Every route embeds the same :class:`~prunemip.encoders.mip_model.MipModel` that
:func:`~prunemip.encoders.bigm.encode` builds over the box of the user's inputs, so there
is one formulation and no second one to drift apart:

* the MipModel's input columns become the user's input variables (substituted, no
  linking rows); every other column (hidden ReLU outputs, binaries, logits) is added;
* the MipModel's rows are added with their columns mapped to the host's.

The box comes from the user's model: a variable's (column's) own bounds, intersected
with an optional ``input_bounds`` argument. A bound that is still missing or infinite
is an error naming the input, never a silent big-M. Where ``input_bounds`` is tighter
than a variable's own bounds, the route adds the box as rows (``lo ≤ x ≤ hi``) so that
the neuron bounds computed over it stay valid, and never changes the user's variables.

Nothing here imports Pyomo or highspy.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from prunemip.encoders.bigm import DEFAULT_FORMULATION, encode
from prunemip.encoders.bounds.interval import NeuronBounds
from prunemip.encoders.mip_model import EncodingStats, MipModel, NeuronStatus
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Network
from prunemip.regions import InputRegion

#: ``input_bounds`` values: ``None`` (the host's bounds only), ``"network"`` (the network's
#: InputSpec range), ``(lower, upper)`` (scalars or vectors), an InputSpec or a box/L∞ region.
InputBounds = Any


@dataclass(frozen=True, eq=False)
class InputBox:
    """The box the neuron bounds are computed over; ``tightened`` marks inputs whose box is
    strictly inside the host variable's own bounds (the route must add it as rows)."""

    lower: np.ndarray
    upper: np.ndarray
    tightened: np.ndarray

    @property
    def region(self) -> InputRegion:
        """The box as an :class:`~prunemip.regions.InputRegion`."""
        return InputRegion.box(self.lower, self.upper)

    @property
    def center(self) -> np.ndarray:
        """The box's centre ``(lower + upper) / 2``."""
        return 0.5 * (self.lower + self.upper)


class EmbeddedNetwork(ABC):
    """A network embedded in a host model: the members the Pyomo block, the OMLT formulation
    and the highspy handle share.

    A route supplies ``mip`` (the :class:`~prunemip.encoders.mip_model.MipModel` it embedded,
    as an attribute or a property), reads values back from its host (:meth:`input_values`,
    :meth:`output_values`) and names itself for :meth:`print_stats` (:meth:`_stats_title`,
    and :meth:`_added_rows`/:meth:`_added_columns` where it adds more than the MipModel).
    """

    mip: MipModel

    @property
    def stats(self) -> EncodingStats:
        """The encoding's statistics: bounds method and time, build time, Σ big-M width."""
        return self.mip.stats

    @property
    def network(self) -> Network:
        """The network the MIP encodes."""
        return self.mip.network

    @abstractmethod
    def input_values(self) -> np.ndarray:
        """The network's inputs in the host's current solution.

        Returns:
            One value per network input, in the network's input order.

        Raises:
            PrunemipError: the host holds no solution (solve the model first).
        """

    @abstractmethod
    def output_values(self) -> np.ndarray:
        """The network's outputs in the host's current solution.

        Returns:
            One value per network output.

        Raises:
            PrunemipError: the host holds no solution (solve the model first).
        """

    def get_error(self) -> np.ndarray:
        """How far the solution's outputs ``y`` are from a float64 forward pass of its inputs ``x``.

        Returns:
            ``|network(x) − y|`` per output (within the solver's tolerances after a solve).
        """
        return forward_error(self.network, self.input_values(), self.output_values())

    def print_stats(self, file: IO[str] | None = None) -> None:
        """Print what the route added: sizes, bounds, neurons by status per layer.

        Args:
            file: where to print; standard output by default.
        """
        text = stats_text(
            self.mip,
            added_rows=self._added_rows(),
            added_columns=self._added_columns(),
            title=self._stats_title(),
        )
        print(text, file=file or sys.stdout)

    @abstractmethod
    def _stats_title(self) -> str:
        """The first words of :meth:`print_stats`, naming the route and its host object."""

    def _added_rows(self) -> int:
        """Rows added to the host: the MipModel's, unless the route adds more."""
        return self.mip.n_rows

    def _added_columns(self) -> int | None:
        """Columns added to the host; ``None``: the MipModel's besides the inputs."""
        return None


def _bound_pair(network: Network, input_bounds: InputBounds) -> tuple[np.ndarray, np.ndarray]:
    """``input_bounds`` as two float vectors of the network's input size (±inf where absent)."""
    n = network.n_inputs
    if input_bounds is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    if isinstance(input_bounds, str):
        if input_bounds != "network":
            raise PrunemipError(
                f"input_bounds={input_bounds!r} is not understood; give (lower, upper), an InputRegion, "
                "an InputSpec or 'network'"
            )
        return network.input_spec.lower.copy(), network.input_spec.upper.copy()
    if isinstance(input_bounds, InputSpec):
        lower, upper = input_bounds.lower, input_bounds.upper
    elif isinstance(input_bounds, InputRegion):
        if not input_bounds.is_box:
            raise PrunemipError(
                "an L1 region is not a box: add the L1 constraint to your own model and pass its "
                "bounding box as input_bounds"
            )
        lower, upper = input_bounds.lower, input_bounds.upper
    else:
        try:
            lower, upper = input_bounds
        except (TypeError, ValueError):
            raise PrunemipError(
                "input_bounds must be a pair (lower, upper) of numbers or vectors, an InputRegion, "
                "an InputSpec or 'network'"
            ) from None
    pair = []
    for value, what in ((lower, "lower"), (upper, "upper")):
        array = np.asarray(np.nan if value is None else value, dtype=np.float64)
        if array.ndim == 0:
            array = np.full(n, float(array))
        array = array.reshape(-1)
        if array.size != n:
            raise PrunemipError(
                f"input_bounds {what} has {array.size} entries but the network takes {n} inputs"
            )
        pair.append(array)
    lo, hi = pair
    lo = np.where(np.isnan(lo), -np.inf, lo)
    hi = np.where(np.isnan(hi), np.inf, hi)
    return lo, hi


def resolve_input_box(
    network: Network,
    host_lower: np.ndarray,
    host_upper: np.ndarray,
    names: Sequence[str],
    input_bounds: InputBounds = None,
    *,
    hint: str = "bound it in your model",
) -> InputBox:
    """Intersect the host variables' bounds with ``input_bounds``; refuse what stays unbounded.

    Args:
        network: the network whose inputs the host variables are.
        host_lower: the host variables' lower bounds, one per input (NaN or -inf: none).
        host_upper: their upper bounds (NaN or +inf: none).
        names: the host variables' names, for the error messages.
        input_bounds: further bounds (see :data:`InputBounds`); ``None`` adds nothing.
        hint: how to fix a missing bound, in the error message.

    Returns:
        The intersected box, with ``tightened`` set where it is strictly inside the host's bounds.

    Raises:
        PrunemipError: a bound is missing or infinite, the sizes disagree, or the box is empty.
    """
    n = network.n_inputs
    host_lo = np.asarray(host_lower, dtype=np.float64).reshape(-1)
    host_hi = np.asarray(host_upper, dtype=np.float64).reshape(-1)
    if host_lo.size != n or host_hi.size != n or len(names) != n:
        raise PrunemipError(f"{host_lo.size} input bounds given but the network takes {n} inputs")
    host_lo = np.where(np.isnan(host_lo), -np.inf, host_lo)
    host_hi = np.where(np.isnan(host_hi), np.inf, host_hi)
    arg_lo, arg_hi = _bound_pair(network, input_bounds)
    lower = np.maximum(host_lo, arg_lo)
    upper = np.minimum(host_hi, arg_hi)
    for k in range(n):
        for value, side in ((lower[k], "lower"), (upper[k], "upper")):
            if not np.isfinite(value):
                raise PrunemipError(
                    f"input {k} ({names[k]}) has no finite {side} bound; {hint} or pass "
                    "input_bounds=(lower, upper): prunemip never guesses a big-M"
                )
    empty = lower > upper
    if np.any(empty):
        k = int(np.argmax(empty))
        raise PrunemipError(
            f"input {k} ({names[k]}): its bounds [{host_lo[k]:g}, {host_hi[k]:g}] and input_bounds "
            f"[{arg_lo[k]:g}, {arg_hi[k]:g}] do not intersect"
        )
    tightened = (lower > host_lo) | (upper < host_hi)
    return InputBox(lower, upper, tightened)


def own_input_box(
    network: Network, names: Sequence[str], input_bounds: InputBounds, *, hint: str
) -> InputBox:
    """The box of inputs a route creates itself (unbounded until the box bounds them).

    Args:
        network: the network whose inputs they are.
        names: the inputs' names, for the error messages.
        input_bounds: their bounds (see :data:`InputBounds`).
        hint: how to fix a missing bound, in the error message.

    Returns:
        ``input_bounds`` as an :class:`InputBox`; the route bounds its own inputs by it.
    """
    unbounded = np.full(network.n_inputs, np.inf)
    return resolve_input_box(network, -unbounded, unbounded, names, input_bounds, hint=hint)


#: The routes' default bounds: interval arithmetic tightened by the linear relaxation
#: (CROWN/DeepPoly, ``encoders/bounds/linear.py``), pure numpy.
DEFAULT_BOUNDS_METHOD = "linear"


def neuron_bounds(network: Network, region: InputRegion, method: str | None = None) -> NeuronBounds:
    """Neuron bounds over ``region`` for the routes.

    Args:
        network: the network to bound.
        region: the input region (the routes pass their input box).
        method: any method of ``prunemip.solvers.bounds.compute_bounds`` (the LP/MIP-based
            ``"lp"``, ``"mip"``, ``"auto"`` may take seconds); ``"interval"`` means ``"ia"``;
            ``None`` means :data:`DEFAULT_BOUNDS_METHOD`.

    Returns:
        The pre-activation bounds of every neuron over ``region``.
    """
    from prunemip.solvers.bounds import compute_bounds  # not at import time: it loads HiGHS

    name = {None: DEFAULT_BOUNDS_METHOD, "interval": "ia"}.get(method, method)
    return compute_bounds(network, region, name)


def encode_box(
    network: Network,
    box: InputBox,
    *,
    bounds_method: str | None = None,
    formulation: str = DEFAULT_FORMULATION,
) -> MipModel:
    """prunemip's MIP of ``network`` over ``box``: the single formulation every route embeds.

    Args:
        network: the network to encode.
        box: the input box the neuron bounds hold over.
        bounds_method: the bounds method (see :func:`neuron_bounds`).
        formulation: ``encode``'s formulation (``"substituted"`` or ``"variable"``).

    Returns:
        The big-M MipModel over ``box``.
    """
    region = box.region
    return encode(network, region, neuron_bounds(network, region, bounds_method), formulation=formulation)


@dataclass(frozen=True, eq=False)
class ColumnSplit:
    """The MipModel's columns as the host sees them: ``added`` lists the columns a route
    creates (all but the inputs), in order, and ``binary`` flags the integral ones."""

    added: np.ndarray
    binary: np.ndarray  #: bool per added column


def split_columns(mip: MipModel) -> ColumnSplit:
    """Which of the MipModel's columns a route adds to the host (all but the inputs).

    Args:
        mip: the MipModel to embed.

    Returns:
        The added columns, in order, and which of them are binary.

    Raises:
        PrunemipError: an output column is an input column (nothing to embed).
    """
    is_input = np.zeros(mip.n_cols, dtype=bool)
    is_input[mip.input_columns] = True
    if np.any(is_input[mip.output_columns]):  # an output that is an input: not for a ReLU net
        raise PrunemipError("an output of the network is one of its inputs; nothing to embed")
    added = np.flatnonzero(~is_input)
    return ColumnSplit(added, mip.integrality[added])


def start_point(mip: MipModel, box: InputBox, x: np.ndarray | None = None) -> np.ndarray:
    """A feasible start for every column, inside every column's bounds.

    Args:
        mip: the MipModel to embed.
        box: its input box.
        x: the input to start from; the box centre when missing or outside the box.

    Returns:
        Every column's value from a forward pass at the starting input.
    """
    point = box.center
    if x is not None:
        candidate = np.asarray(x, dtype=np.float64).reshape(-1)
        if (
            candidate.shape == point.shape
            and np.all(np.isfinite(candidate))
            and np.all(candidate >= box.lower)
            and np.all(candidate <= box.upper)
        ):
            point = candidate
    values = mip.solution_from_input(point)
    return np.clip(values, mip.col_lower, mip.col_upper)


def forward_error(network: Network, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """How far a solver's outputs are from a float64 forward pass of its inputs.

    Args:
        network: the network embedded.
        inputs: the solution's inputs ``x``.
        outputs: the solution's outputs ``y``.

    Returns:
        ``|network(x) − y|`` per output.
    """
    x = np.asarray(inputs, dtype=np.float64).reshape(-1)
    y = np.asarray(outputs, dtype=np.float64).reshape(-1)
    return np.abs(network.forward(x) - y)


def stats_text(mip: MipModel, *, added_rows: int, title: str, added_columns: int | None = None) -> str:
    """A plain-text summary of what a route added to the user's model (``print_stats``).

    Args:
        mip: the MipModel embedded.
        added_rows: the rows the route added (the MipModel's and any of its own).
        title: the summary's first words, naming the route.
        added_columns: the columns the route added; by default the MipModel's besides the inputs.

    Returns:
        The summary: sizes, bounds and build times, then neurons by status per layer.
    """
    stats = mip.stats
    network = mip.network
    split = split_columns(mip)
    added_columns = split.added.size if added_columns is None else added_columns
    lines = [
        f"{title}: network {network.architecture}, {network.nnz} nonzero weights "
        f"(sparsity {network.sparsity:.1%}), {mip.formulation} ẑ",
        f"  added {added_columns} columns ({int(split.binary.sum())} binary) and {added_rows} rows "
        f"besides the {network.n_inputs} input variables; {stats.nonzeros} network matrix nonzeros",
        f"  bounds {stats.bounds_method} over the input box: {stats.bounds_seconds * 1e3:.1f} ms, "
        f"build {stats.build_seconds * 1e3:.1f} ms, Σ big-M width {stats.total_bigm_width:.4g}",
    ]
    header = f"  {'layer':>5} {'neurons':>8} {'weights':>8} {'unstable':>8} {'active':>7} {'inactive':>8}"
    lines += [header + f" {'constant':>8} {'removed':>7}"]
    for index, (encoding, layer) in enumerate(zip(mip.layers, network.layers, strict=True)):
        relu = layer.activation == "relu"

        def count(status: NeuronStatus, relu: bool = relu, encoding: Any = encoding) -> str:
            return str(encoding.count(status)) if relu else "—"

        lines.append(
            f"  {index + 1:>5} {layer.n_out:>8} {layer.nnz:>8} {count(NeuronStatus.UNSTABLE):>8} "
            f"{count(NeuronStatus.ACTIVE):>7} {count(NeuronStatus.INACTIVE):>8} "
            f"{encoding.count(NeuronStatus.CONSTANT):>8} {encoding.count(NeuronStatus.REMOVED):>7}"
        )
    return "\n".join(lines)
