"""Shared fixtures, hypothesis strategies and reference implementations for the MIP tests.

The helpers here are deliberately independent of the code under test: the brute-force
optimum enumerates activation patterns with plain LPs (scipy's ``linprog``), and exact
pre-activations are computed with :class:`fractions.Fraction`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from prunemip.network import InputSpec, Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import HighsOptions

# ----------------------------------------------------------------------- hypothesis
# The default profile draws the same examples on every run, so CI verdicts are
# reproducible; "thorough" explores fresh random examples (PRUNEMIP_HYPOTHESIS_PROFILE=thorough).
settings.register_profile(
    "prunemip",
    deadline=None,
    max_examples=50,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", parent=settings.get_profile("prunemip"), max_examples=300, derandomize=False
)
settings.load_profile(os.environ.get("PRUNEMIP_HYPOTHESIS_PROFILE", "prunemip"))

#: HiGHS settings for tests that compare optima: no optimality gap, one thread, and
#: feasibility tolerances of 1e-9 so that no row slack lets an optimum overshoot the
#: true one by HiGHS's default 1e-6 (times the weights it passes through).
EXACT = HighsOptions(
    time_limit=60.0,
    threads=1,
    mip_rel_gap=0.0,
    extra={"mip_abs_gap": 0.0, "mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9},
)

seeds = st.integers(min_value=0, max_value=2**32 - 1)
norms = st.sampled_from(["linf", "l1"])


def scaled(count: int) -> int:
    """Fewer examples than the profile for the slower properties (the thorough profile scales them up)."""
    return max(count, settings().max_examples * count // 50)


# ----------------------------------------------------------------------- networks
def random_network(
    rng: np.random.Generator,
    widths: Sequence[int],
    sparsity: float = 0.0,
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
    weight_scale: float = 1.0,
    bias_scale: float = 0.5,
    activations: Sequence[str] | None = None,
    explicit_zeros: bool = False,
) -> Network:
    """A random network whose weight matrices keep a fraction ``1 - sparsity`` of entries.

    Weights are ``N(0, weight_scale² / fan_in)``; pruned entries are absent from the CSR
    pattern, or stored as explicit zeros when ``explicit_zeros`` is set (both must be
    treated as pruned).
    """
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        dense = rng.normal(size=(fan_out, fan_in)) * weight_scale / np.sqrt(max(fan_in, 1))
        keep = rng.random(size=dense.shape) >= sparsity
        if explicit_zeros:
            rows, cols = np.nonzero(np.ones_like(dense, dtype=bool))
            values = np.where(keep, dense, 0.0)[rows, cols]
            matrix = sp.csr_matrix((values, (rows, cols)), shape=dense.shape)
        else:
            matrix = sp.csr_matrix(np.where(keep, dense, 0.0))
        weights.append(matrix)
        biases.append(rng.normal(size=fan_out) * bias_scale)
    spec = InputSpec.create(widths[0], input_range[0], input_range[1])
    network = Network.from_arrays(weights, biases, spec, activations)
    if explicit_zeros:
        # Layer.create must keep the explicit zeros for this helper to exercise them.
        assert all(layer.weight.nnz == layer.n_in * layer.n_out for layer in network.layers)
    return network


@st.composite
def sparse_networks(
    draw: st.DrawFn,
    min_hidden_layers: int = 1,
    max_hidden_layers: int = 3,
    max_inputs: int = 8,
    max_width: int = 10,
    max_outputs: int = 5,
    sparsities: Sequence[float] = (0.0, 0.3, 0.6, 0.9),
) -> Network:
    """Random sparse ReLU networks (identity output) on inputs in [0, 1]."""
    n_hidden = draw(st.integers(min_hidden_layers, max_hidden_layers))
    widths = [draw(st.integers(1, max_inputs))]
    widths += [draw(st.integers(1, max_width)) for _ in range(n_hidden)]
    widths.append(draw(st.integers(2, max_outputs)))
    sparsity = draw(st.sampled_from(sparsities))
    explicit = draw(st.booleans())
    rng = np.random.default_rng(draw(seeds))
    return random_network(rng, widths, sparsity, explicit_zeros=explicit)


@st.composite
def tiny_networks(draw: st.DrawFn, max_relus: int = 8) -> Network:
    """Networks with 2–4 inputs, 1–2 hidden layers and at most ``max_relus`` hidden ReLUs."""
    n_inputs = draw(st.integers(2, 4))
    n_hidden = draw(st.integers(1, 2))
    if n_hidden == 1:
        hidden = [draw(st.integers(1, max_relus))]
    else:
        first = draw(st.integers(1, max_relus - 1))
        hidden = [first, draw(st.integers(1, max_relus - first))]
    n_outputs = draw(st.integers(2, 3))
    sparsity = draw(st.sampled_from((0.0, 0.25, 0.5)))
    rng = np.random.default_rng(draw(seeds))
    return random_network(rng, [n_inputs, *hidden, n_outputs], sparsity, weight_scale=2.0, bias_scale=0.2)


def ball_region(network: Network, x0: np.ndarray, norm: str, radius: float) -> InputRegion:
    spec = network.input_spec
    return InputRegion.ball(norm, x0, radius, spec.lower, spec.upper)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


# ----------------------------------------------------------------------- sampling
def sample_region(region: InputRegion, rng: np.random.Generator, count: int) -> np.ndarray:
    """Points of the region: uniform in the box (L∞/box) or scaled directions (L1), plus corners."""
    lo, hi = region.lower, region.upper
    n = region.size
    if region.norm != "l1":
        points = lo + rng.random((count, n)) * (hi - lo)
        corners = np.where(rng.random((count, n)) < 0.5, lo, hi)
        return np.vstack([points, corners])
    assert region.center is not None
    direction = rng.laplace(size=(count, n))
    # Sparse directions reach the ball's vertices, where margins are extreme.
    direction *= rng.random((count, n)) < rng.uniform(0.1, 1.0, size=(count, 1))
    norms = np.maximum(np.sum(np.abs(direction), axis=1, keepdims=True), 1e-300)
    scale = region.radius * rng.random((count, 1)) ** 0.3 * (1.0 - 1e-9)
    points = np.clip(region.center + direction / norms * scale, lo, hi)
    vertices = []
    for i in range(n):
        for sign in (-1.0, 1.0):
            vertex = region.center.copy()
            vertex[i] += sign * region.radius * (1.0 - 1e-9)
            vertices.append(np.clip(vertex, lo, hi))
    return np.vstack([points, *vertices])


def exact_pre_activations(network: Network, x: np.ndarray) -> list[list[Fraction]]:
    """Pre-activations of every layer at ``x`` in exact rational arithmetic."""
    h = [Fraction(float(v)) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
    values = []
    for layer in network.layers:
        w = layer.weight.tocsr()
        z = []
        for j in range(layer.n_out):
            total = Fraction(float(layer.bias[j]))
            for idx in range(w.indptr[j], w.indptr[j + 1]):
                total += Fraction(float(w.data[idx])) * h[w.indices[idx]]
            z.append(total)
        values.append(z)
        h = [max(v, Fraction(0)) for v in z] if layer.activation == "relu" else z
    return values


# ----------------------------------------------------------------------- brute force
def _affine_maps(network: Network, pattern: Sequence[np.ndarray]) -> tuple[list, np.ndarray, np.ndarray]:
    """Pre-activations as affine maps of x under a fixed activation pattern of the hidden ReLUs.

    Returns the sign constraints ``(A, c, active)`` per hidden ReLU layer and the output
    map ``(A_out, c_out)``.
    """
    n = network.n_inputs
    A, c = np.eye(n), np.zeros(n)
    signs = []
    hidden = network.layers[:-1]
    for layer, active in zip(hidden, pattern, strict=True):
        W = layer.weight.toarray()
        A, c = W @ A, W @ c + layer.bias
        if layer.activation == "relu":
            signs.append((A, c, active))
            A, c = A * active[:, None], c * active
    W = network.layers[-1].weight.toarray()
    return signs, W @ A, W @ c + network.layers[-1].bias


def brute_force_margin(network: Network, region: InputRegion, target: int, label: int) -> float | None:
    """max ẑ_target − ẑ_label over the region, by one LP per activation pattern of the hidden ReLUs.

    The output layer must be the identity. Returns ``None`` if no pattern is feasible
    (never the case for a non-empty region).
    """
    assert network.layers[-1].activation == "identity"
    n = network.n_inputs
    relu_sizes = [layer.n_out if layer.activation == "relu" else 0 for layer in network.layers[:-1]]
    n_relu = sum(relu_sizes)
    assert n_relu <= 12, "brute force is exponential in the number of ReLUs"
    l1 = region.norm == "l1"
    # Variables: x (n), and for L1 also t (n) with |x − x0| ≤ t, Σ t ≤ δ.
    n_var = 2 * n if l1 else n
    bounds = [(float(lo), float(hi)) for lo, hi in zip(region.lower, region.upper, strict=True)]
    base_rows, base_rhs = [], []
    if l1:
        assert region.center is not None
        bounds += [(0.0, None)] * n
        eye = np.eye(n)
        base_rows += [np.hstack([eye, -eye]), np.hstack([-eye, -eye]), np.hstack([np.zeros(n), np.ones(n)])]
        base_rhs += [region.center, -region.center, [region.radius]]
    offsets = np.cumsum([0, *relu_sizes])
    best = None
    for bits in itertools.product((0.0, 1.0), repeat=n_relu):
        pattern = [np.array(bits[offsets[i] : offsets[i + 1]]) for i in range(len(relu_sizes))]
        signs, A_out, c_out = _affine_maps(network, pattern)
        rows, rhs = list(base_rows), list(base_rhs)
        for A, c, active in signs:
            # active: −(A x + c) ≤ 0; inactive: A x + c ≤ 0
            sign = np.where(active > 0, -1.0, 1.0)
            block = sign[:, None] * A
            rows.append(np.hstack([block, np.zeros((A.shape[0], n_var - n))]))
            rhs.append(-sign * c)
        objective = np.zeros(n_var)
        objective[:n] = -(A_out[target] - A_out[label])
        result = linprog(
            objective,
            A_ub=np.vstack([r.reshape(-1, n_var) for r in rows]) if rows else None,
            b_ub=np.concatenate([np.ravel(r) for r in rhs]) if rhs else None,
            bounds=bounds,
            method="highs",
        )
        if result.status == 0:
            value = -result.fun + (c_out[target] - c_out[label])
            best = value if best is None else max(best, value)
    return best


def l1_ball_lp_maximum(c: np.ndarray, x0: np.ndarray, radius: float) -> float:
    """max c·x over {‖x − x0‖₁ ≤ δ} ∩ [0, 1]^n by an LP: x = x0 + d⁺ − d⁻, d± ≥ 0, Σ d⁺ + d⁻ ≤ δ."""
    result = linprog(
        -np.concatenate([c, -c]),
        A_ub=np.ones((1, 2 * c.size)),
        b_ub=[radius],
        bounds=[(0, 1 - v) for v in x0] + [(0, v) for v in x0],
        method="highs",
    )
    return float(-result.fun + c @ x0)


def assert_one_line(error: pytest.ExceptionInfo[BaseException], *fragments: str) -> None:
    message = str(error.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
