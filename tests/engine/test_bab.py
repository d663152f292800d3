"""Branch and bound over ReLU splits: verdicts against brute force, sound subdomain bounds,
children that cover their parent, and subdomain MIPs that are exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from scipy.optimize import linprog

from prunemip.encoders.bounds.linear import linear_bounds
from prunemip.encoders.mip_model import NeuronStatus
from prunemip.engine.bab import BabOptions, branch_and_bound, subdomain_model
from prunemip.engine.beta import Parameters, TorchNetwork
from prunemip.engine.subdomains import OutputRows, Query, Split, Subdomain
from prunemip.engine.verify import VerifyOptions, verify
from prunemip.errors import PrunemipError
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import solve
from prunemip.solvers.result import SolveStatus
from prunemip.vnnlib import Disjunct, OutputConstraint, Property
from tests.conftest import (
    EXACT,
    ball_region,
    brute_force_margin,
    random_network,
    sample_region,
    seeds,
    sparse_networks,
    tiny_networks,
)

regions = st.sampled_from(["box", "linf", "l1"])
branchings = st.sampled_from(["babsr", "fsb"])


def make_region(network: Network, rng: np.random.Generator, norm: str, radius: float = 0.3) -> InputRegion:
    if norm == "box":
        lo = rng.random(network.n_inputs) * 0.5
        return InputRegion.box(lo, lo + 0.5)
    return ball_region(network, rng.random(network.n_inputs), norm, radius)


def margin_row(n_outputs: int, target: int, label: int, level: float, strict: bool = False) -> OutputRows:
    """The attack row ``y_label − y_target ≤ −level``: the margin ``y_target − y_label ≥ level``."""
    C = np.zeros(n_outputs)
    C[label], C[target] = 1.0, -1.0
    return OutputRows.create(C, [-level], [strict])


def in_subdomain(network: Network, points: np.ndarray, splits: tuple[Split, ...]) -> np.ndarray:
    """Which points satisfy every split (their true pre-activations on the split's side)."""
    _, pre = network.forward_with_preactivations(points)
    keep = np.ones(len(points), bool)
    for s in splits:
        z = pre[s.layer][:, s.neuron]
        keep &= z >= 0.0 if s.active else z <= 0.0
    return keep


def branchable(query: Query, sub: Subdomain) -> list[tuple[int, int]]:
    return [(k, int(j)) for k, mask in enumerate(query.unstable(sub)) for j in np.flatnonzero(mask)]


def random_subdomains(query: Query, rng: np.random.Generator, depth: int) -> list[Subdomain]:
    """A chain of subdomains from the root, each a random child of the one before."""
    bounds = linear_bounds(query.network, query.region)
    sub = query.bound((), bounds.lower, bounds.upper, len(query.network.layers))
    chain = [sub]
    for _ in range(depth):
        unstable = branchable(query, sub)
        if not unstable or np.isinf(sub.value):
            break
        layer, neuron = unstable[rng.integers(len(unstable))]
        sub = query.children(sub, layer, neuron)[int(rng.integers(2))]
        chain.append(sub)
    return chain


def restricted_brute_force(
    network: Network, region: InputRegion, target: int, label: int, splits: tuple[Split, ...]
) -> float | None:
    """max ``y_target − y_label`` over the points of the region that satisfy ``splits``: one LP
    per activation pattern that agrees with them (``None`` if none is feasible)."""
    n = network.n_inputs
    hidden = network.layers[:-1]
    sizes = [layer.n_out for layer in hidden]
    fixed = {(s.layer, s.neuron): float(s.active) for s in splits}
    l1 = region.norm == "l1"
    bounds = [(float(lo), float(hi)) for lo, hi in zip(region.lower, region.upper, strict=True)]
    n_var = 2 * n if l1 else n
    base_rows, base_rhs = [], []
    if l1:
        bounds += [(0.0, None)] * n
        eye = np.eye(n)
        base_rows += [np.hstack([eye, -eye]), np.hstack([-eye, -eye]), np.hstack([np.zeros(n), np.ones(n)])]
        base_rhs += [region.center, -region.center, [region.radius]]
    best = None
    for bits in itertools.product((0.0, 1.0), repeat=sum(sizes)):
        pattern = np.split(np.array(bits), np.cumsum(sizes)[:-1])
        if any(pattern[k][j] != side for (k, j), side in fixed.items()):
            continue
        A, c = np.eye(n), np.zeros(n)
        rows, rhs = list(base_rows), list(base_rhs)
        for layer, active in zip(hidden, pattern, strict=True):
            A, c = layer.weight.toarray() @ A, layer.weight.toarray() @ c + layer.bias
            sign = np.where(active > 0, -1.0, 1.0)
            rows.append(np.hstack([sign[:, None] * A, np.zeros((len(c), n_var - n))]))
            rhs.append(-sign * c)
            A, c = A * active[:, None], c * active
        W, b = network.layers[-1].weight.toarray(), network.layers[-1].bias
        objective = np.zeros(n_var)
        objective[:n] = -(W[target] - W[label]) @ A
        result = linprog(
            objective,
            A_ub=np.vstack(rows),
            b_ub=np.concatenate([np.ravel(r) for r in rhs]),
            bounds=bounds,
            method="highs",
        )
        if result.status == 0:
            value = -result.fun + (W[target] - W[label]) @ c + b[target] - b[label]
            best = value if best is None else max(best, value)
    return best


# ---------------------------------------------------------------------- verdicts
@given(
    tiny_networks(max_relus=6),
    seeds,
    regions,
    branchings,
    st.sampled_from([-0.05, -1e-3, 1e-3, 0.05]),
    st.booleans(),
)
def test_verdicts_agree_with_brute_force(network, seed, norm, branching, offset, strict):
    """Never "refuted" when brute force reaches the level, never "found" without a forward
    pass that satisfies the row; the proven bound is at most the true optimum; with the MIP
    for what the bounds leave, every query is decided."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    optimum = brute_force_margin(network, region, 1, 0)
    level = optimum + offset  # the row asks for a margin ≥ level (> level when strict)
    rows = margin_row(network.n_outputs, 1, 0, level, strict)
    reachable = offset < 0
    result = branch_and_bound(network, region, rows, BabOptions(branching=branching, highs=EXACT))
    event(f"{result.status} after {result.visited} subdomains, {result.mip_solves} MIPs")
    assert result.status == ("found" if reachable else "refuted")
    if result.status == "found":
        assert region.contains(result.x)
        outputs = network.forward(result.x)
        assert np.array_equal(outputs, result.outputs)
        assert rows.hold(outputs)
    # v(x) = level − margin(x); its minimum is level − optimum = offset.
    assert result.bound <= offset + 1e-9
    assert result.best >= offset - 1e-9


@given(sparse_networks(max_hidden_layers=2, max_width=6), seeds, regions, branchings, st.integers(1, 30))
def test_open_results_keep_a_sound_bound(network, seed, norm, branching, budget):
    """Cut short (no MIP, a few subdomains), the bound still lies below every sampled value of
    ``v`` and "refuted" is never contradicted by a sampled point."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    points = sample_region(region, rng, 300)
    margins = network.forward(points)[:, 1] - network.forward(points)[:, 0]
    level = float(np.quantile(margins, 0.9)) + float(rng.normal(0.0, 0.05))
    rows = margin_row(network.n_outputs, 1, 0, level)
    options = BabOptions(branching=branching, mip=False, max_subdomains=budget)
    result = branch_and_bound(network, region, rows, options)
    event(result.status)
    assert result.bound <= np.min(level - margins) + 1e-9
    if np.any(margins >= level):
        assert result.status != "refuted"
    if result.status == "open":
        assert all(not s.refuted for s in result.open)
        assert result.bound == min(s.value for s in result.open) or result.bound < min(
            s.value for s in result.open
        )


@given(tiny_networks(max_relus=6), seeds, regions, st.integers(1, 6), st.sampled_from([-1e-3, 1e-3]))
def test_a_resumed_search_reaches_the_verdict_of_one_search(network, seed, norm, budget, offset):
    """Cut short after ``budget`` subdomains and resumed from its frontier, the search decides
    as brute force says, its bound stays below the optimum of ``v`` and its counts add up."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm, radius=1.0)  # wide: more unstable neurons to split
    optimum = brute_force_margin(network, region, 1, 0)
    rows = margin_row(network.n_outputs, 1, 0, optimum + offset)
    cut_short = BabOptions(mip=False, max_subdomains=budget, batch=1, optimise=False)
    first = branch_and_bound(network, region, rows, cut_short)
    event(first.status)
    if first.status != "open":
        return
    result = branch_and_bound(network, region, rows, BabOptions(highs=EXACT), resume=first)
    assert result.status == ("found" if offset < 0 else "refuted")
    assert result.bound <= offset + 1e-9 and first.bound <= offset + 1e-9
    assert result.visited >= first.visited
    with pytest.raises(PrunemipError, match="only an open search"):
        branch_and_bound(network, region, rows, resume=result)


@given(sparse_networks(max_hidden_layers=2, max_width=6), seeds, regions)
def test_conjunctions_are_never_refuted_at_a_sampled_point(network, seed, norm):
    """Two rows at once (beat two classes): a sampled point that satisfies both means "found"
    or "open", never "refuted"; a witness satisfies both."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    points = sample_region(region, rng, 300)
    y = network.forward(points)
    level = float(np.quantile(np.minimum(y[:, 1], y[:, -1]) - y[:, 0], 0.95))
    C = np.zeros((2, network.n_outputs))
    C[:, 0] = 1.0
    C[0, 1] -= 1.0
    C[1, -1] -= 1.0
    rows = OutputRows.create(C, [-level, -level])
    result = branch_and_bound(network, region, rows, BabOptions(time_limit=20.0, highs=EXACT))
    event(result.status)
    satisfied = np.all(y @ C.T <= rows.rhs, axis=1)
    if satisfied.any():
        assert result.status != "refuted"
    if result.status == "found":
        assert rows.hold(network.forward(result.x))


# ---------------------------------------------------------------------- subdomains
@given(sparse_networks(max_hidden_layers=3, max_width=8), seeds, regions, st.integers(1, 6))
def test_subdomain_bounds_contain_the_activations_of_their_points(network, seed, norm, depth):
    """Every subdomain's bounds contain the pre-activations of sampled points that satisfy its
    splits, its row bounds lie below their rows, and a subdomain proved empty has no such point."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    query = Query(network, region, margin_row(network.n_outputs, 1, 0, 0.0))
    points = sample_region(region, rng, 2000)
    pre = network.pre_activations(points)
    rows_at = network.forward(points) @ query.rows.coefficients.T
    for sub in random_subdomains(query, rng, depth):
        inside = in_subdomain(network, points, sub.splits)
        event(f"{np.count_nonzero(inside)} points inside")
        if np.isinf(sub.value):
            assert not inside.any()
            continue
        for z, lo, hi in zip(pre, sub.lower, sub.upper, strict=True):
            assert np.all(z[inside] >= lo) and np.all(z[inside] <= hi)
        assert np.all(rows_at[inside] >= sub.row_lower)


@given(sparse_networks(max_hidden_layers=3, max_width=8), seeds, regions, st.integers(0, 4))
def test_children_cover_their_parent(network, seed, norm, depth):
    """Each sampled point of the parent lies in a child whose bounds contain its activations and
    whose value is at most its own ``v``; children add exactly one split to the parent's, and
    their row bounds are never below the parent's (a parent's bound holds on its children)."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    query = Query(network, region, margin_row(network.n_outputs, 1, 0, 0.0))
    parent = random_subdomains(query, rng, depth)[-1]
    unstable = branchable(query, parent)
    if not unstable or np.isinf(parent.value):
        return
    layer, neuron = unstable[rng.integers(len(unstable))]
    children = query.children(parent, layer, neuron)
    assert [c.splits[:-1] for c in children] == [parent.splits, parent.splits]
    assert {c.splits[-1] for c in children} == {Split(layer, neuron, True), Split(layer, neuron, False)}
    assert all(np.all(c.row_lower >= parent.row_lower) and c.value >= parent.value for c in children)
    points = sample_region(region, rng, 2000)
    points = points[in_subdomain(network, points, parent.splits)]
    if len(points) == 0:
        return
    _, pre = network.forward_with_preactivations(points)
    values = query.rows.violation(network.forward(points))
    for i in range(len(points)):
        homes = [c for c in children if in_subdomain(network, points[i : i + 1], c.splits)[0]]
        assert homes
        for child in homes:
            assert child.value <= values[i] + 1e-12
            assert all(
                lo[j] <= z[i, j] <= hi[j]
                for z, lo, hi in zip(pre, child.lower, child.upper, strict=True)
                for j in range(lo.size)
            )


@given(tiny_networks(max_relus=6), seeds, regions, st.integers(0, 4))
def test_subdomain_mip_optimum_equals_brute_force_on_the_subdomain(network, seed, norm, depth):
    """The subdomain MIP, maximising the margin, reaches exactly the brute-force optimum over
    the points of the region that satisfy its splits (infeasible when there are none)."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    query = Query(network, region, margin_row(network.n_outputs, 1, 0, 0.0))
    sub = random_subdomains(query, rng, depth)[-1]
    expected = restricted_brute_force(network, region, 1, 0, sub.splits)
    if np.isinf(sub.value):
        assert expected is None
        return
    model = subdomain_model(query, sub).with_margin_objective(1, 0)
    result = solve(model, EXACT)
    # A split neuron the encoder folds away (a constant: its inputs are all stably inactive)
    # loses its row, and the MIP is a relaxation of the subdomain.
    encoded = {NeuronStatus.UNSTABLE, NeuronStatus.ACTIVE}
    exact = all(model.layers[s.layer].status[s.neuron] in encoded for s in sub.splits)
    event(f"{len(sub.splits)} splits, {model.stats.binaries} binaries, exact: {exact}")
    if expected is None:
        assert result.status == SolveStatus.INFEASIBLE or not exact
    elif exact:
        assert result.status == SolveStatus.OPTIMAL
        assert result.objective == pytest.approx(expected, abs=1e-6)
    else:
        assert result.objective >= expected - 1e-6


# ---------------------------------------------------------------------- examples
def test_a_dense_net_is_decided_and_agrees_with_sampling(rng):
    """A 6-12-12-3 net: BaB (no MIP) and BaB with the MIP agree with each other and with sampling."""
    network = random_network(rng, [6, 12, 12, 3], weight_scale=2.0, bias_scale=0.1)
    region = ball_region(network, np.full(6, 0.5), "linf", 0.1)
    y = network.forward(sample_region(region, rng, 4000))
    best = float(np.max(y[:, 1] - y[:, 0]))
    for level, expected in ((best, "found"), (best + 1.0, "refuted")):
        rows = margin_row(3, 1, 0, level)
        result = branch_and_bound(network, region, rows, BabOptions(time_limit=60.0))
        assert result.status == expected, (level, result)


def test_the_witness_is_checked_strictly():
    """A strict row at exactly the optimum has no witness: ``y_1 − y_0 > 1`` where its maximum is 1
    (nor a proof: bounds and the MIP's tolerance leave the boundary open); ``≥ 1`` has one."""
    network = Network.from_arrays(
        [np.array([[1.0], [-1.0]]), np.array([[0.0, 0.0], [1.0, 0.0]])],
        [
            np.zeros(2),
            np.zeros(2),
        ],
    )
    region = InputRegion.box(np.zeros(1), np.ones(1))
    rows = margin_row(2, 1, 0, 1.0, strict=True)
    assert branch_and_bound(network, region, rows, BabOptions(time_limit=5.0)).status == "open"
    relaxed = margin_row(2, 1, 0, 1.0)
    result = branch_and_bound(network, region, relaxed)
    assert result.status == "found"
    assert result.x[0] == 1.0


def test_bad_rows_and_outputs_are_errors(rng):
    with pytest.raises(PrunemipError, match="output rows"):
        OutputRows.create(np.ones((2, 3)), [0.0])
    with pytest.raises(PrunemipError, match="NaN"):
        OutputRows.create(np.array([np.nan, 1.0]), [0.0])
    network = random_network(rng, [2, 3, 2], activations=["relu", "relu"])
    region = InputRegion.box(np.zeros(2), np.ones(2))
    with pytest.raises(PrunemipError, match="identity output"):
        branch_and_bound(network, region, margin_row(2, 1, 0, 0.0))


@given(sparse_networks(max_hidden_layers=3, max_width=8), seeds, regions, st.integers(1, 5), st.booleans())
def test_split_multipliers_and_slopes_keep_the_row_bounds_sound(network, seed, norm, depth, optimised):
    """Any slopes in [0, 1] and multipliers β ≥ 0 on the splits (random ones, or those the torch
    optimiser picks) give row bounds below the rows at every sampled point of each subdomain,
    all subdomains of a chain bounded in one batch (the root without parameters)."""
    rng = np.random.default_rng(seed)
    region = make_region(network, rng, norm)
    query = Query(network, region, margin_row(network.n_outputs, 1, 0, 0.0))
    subs = [s for s in random_subdomains(query, rng, depth)[1:] if not np.isinf(s.value)]
    if not subs:
        return
    signs = []
    for sub in subs:
        sign = [np.zeros(lo.size) for lo in sub.lower]
        for split in sub.splits:
            sign[split.layer][split.neuron] = 1.0 if split.active else -1.0
        signs.append(sign)
    if optimised:
        params = TorchNetwork(network, region, "cpu").optimise(
            -query.rows.coefficients,
            [np.stack(layer) for layer in zip(*(s.lower for s in subs), strict=True)],
            [np.stack(layer) for layer in zip(*(s.upper for s in subs), strict=True)],
            [np.stack(layer) for layer in zip(*signs, strict=True)],
        )
    else:
        params = [
            Parameters(
                [rng.random((1, lo.size)) for lo in sub.lower],
                [rng.exponential(2.0, (1, s.size)) * s for s in sign],
            )
            for sub, sign in zip(subs, signs, strict=True)
        ]
    root = random_subdomains(query, rng, 0)[0]
    bounded = query.optimised([root, *subs], [None, *params])
    assert np.array_equal(bounded[0].row_lower, root.row_lower)
    points = sample_region(region, rng, 2000)
    for sub, after in zip(subs, bounded[1:], strict=True):
        assert np.all(after.row_lower >= sub.row_lower)
        inside = in_subdomain(network, points, sub.splits)
        if inside.any():
            rows_at = network.forward(points[inside]) @ query.rows.coefficients.T
            assert np.all(rows_at >= after.row_lower)


def test_a_batch_is_bounded_as_each_of_its_subdomains_alone(rng):
    """One batched backward bound gives every subdomain the bound it gets alone (to the last
    bits: only the order of the float sums differs)."""
    network = random_network(rng, [6, 12, 12, 3], activations=["relu", "relu", "identity"])
    query = Query(network, make_region(network, rng, "l1", 1.0), margin_row(3, 1, 0, 0.0))
    subs = random_subdomains(query, rng, 6)
    params = [
        Parameters(
            [rng.random((1, lo.size)) for lo in sub.lower],
            [rng.exponential(1.0, (1, lo.size)) for lo in sub.lower],
        )
        for sub in subs
    ]
    together = query.optimised(subs, params)
    for sub, param, batched in zip(subs, params, together, strict=True):
        alone = query.optimised([sub], [param])[0]
        assert batched.splits == alone.splits
        np.testing.assert_allclose(batched.row_lower, alone.row_lower, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(batched.points, alone.points)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_reaches_the_cpu_verdicts(rng):
    """The torch optimisation on the GPU gives the same verdicts (float64 on both; the bounds
    are certified in numpy either way)."""
    network = random_network(rng, [8, 24, 24, 24, 4], weight_scale=2.0, bias_scale=0.1)
    region = ball_region(network, np.full(8, 0.5), "linf", 0.08)
    y = network.forward(sample_region(region, rng, 4000))
    best = float(np.max(y[:, 1] - y[:, 0]))
    for level in (best, best + 0.5, best + 2.0):
        rows = margin_row(4, 1, 0, level)
        verdicts = {
            device: branch_and_bound(network, region, rows, BabOptions(device=device, time_limit=60.0)).status
            for device in ("cpu", "cuda")
        }
        assert verdicts["cpu"] == verdicts["cuda"], (level, verdicts)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_cuda_without_a_device_is_a_one_line_error(rng):
    network = random_network(rng, [2, 3, 2])
    region = InputRegion.box(np.zeros(2), np.ones(2))
    with pytest.raises(PrunemipError, match="cuda"):
        branch_and_bound(network, region, margin_row(2, 1, 0, 0.0), BabOptions(device="cuda"))


# ---------------------------------------------------------------------- in verify
def margin_property(network: Network, region: InputRegion, level: float, strict: bool = False) -> Property:
    """The VNN-LIB property "over the box, ``y_1 − y_0 ≥ level``" (``>`` when strict)."""
    C = np.zeros(network.n_outputs)
    C[0], C[1] = 1.0, -1.0
    constraint = OutputConstraint(C, -level, strict, 1)
    disjunct = Disjunct(region.lower, region.upper, (constraint,))
    return Property(network.n_inputs, network.n_outputs, (disjunct,), "margin")


@given(tiny_networks(max_relus=6), seeds, st.sampled_from([-0.05, 1e-3, 0.05]))
def test_verify_with_branch_and_bound_agrees_with_brute_force(network, seed, offset):
    """verify with branch and bound racing the MIP: "sat" with a witness exactly when brute
    force reaches the level, "unsat" when it does not, whichever settles it (the tiny nets are
    decided well in time)."""
    region = make_region(network, np.random.default_rng(seed), "box")
    level = brute_force_margin(network, region, 1, 0) + offset
    prop = margin_property(network, region, level)
    result = verify(network, prop, 30.0, VerifyOptions(highs=EXACT))
    event(f"{result.verdict} by {result.stage}")
    assert result.verdict == ("sat" if offset < 0 else "unsat")
    if result.verdict == "sat":
        assert prop.satisfied_by(result.x, network.forward(result.x))


def test_verify_refutes_by_branch_and_bound_what_the_bounds_leave(rng):
    """A 6-16-16-3 net whose margin is just out of reach: the linear bounds leave the disjunct
    open, and branch and bound (or the MIP beside it) refutes it."""
    network = random_network(rng, [6, 16, 16, 3], weight_scale=2.0, bias_scale=0.1)
    region = ball_region(network, np.full(6, 0.5), "linf", 0.15)
    query = Query(network, region, margin_row(3, 1, 0, 0.0))
    root = random_subdomains(query, rng, 0)[0]
    optimum = solve(subdomain_model(query, root).with_margin_objective(1, 0), EXACT).objective
    prop = margin_property(network, region, optimum + 0.05)
    result = verify(network, prop, 60.0)
    assert result.verdict == "unsat" and result.stage in ("bab", "mip"), result
    assert result.disjuncts[0] in ("unsat (bab)", "unsat"), result
    assert verify(network, margin_property(network, region, optimum - 0.05), 60.0).verdict == "sat"


def robust_by_a_margin(rng: np.random.Generator) -> tuple[Network, InputRegion, OutputRows]:
    """A 16x16 net, an L∞ ball and the row "margin to class 1 ≥ its optimum + 0.05": refuted,
    with ``v ≥ 0.05`` everywhere, after more than a few splits."""
    network = random_network(rng, [6, 16, 16, 3], weight_scale=2.0, bias_scale=0.1)
    region = ball_region(network, np.full(6, 0.5), "linf", 0.15)
    query = Query(network, region, margin_row(3, 1, 0, 0.0))
    root = random_subdomains(query, rng, 0)[0]
    optimum = solve(subdomain_model(query, root).with_margin_objective(1, 0), EXACT).objective
    return network, region, margin_row(3, 1, 0, optimum + 0.05)


def test_a_cancelled_search_ends_open_with_a_sound_bound(rng):
    """``cancel`` (a racing stage settled the query) ends the search after the step it polls,
    "open", with a bound below the optimum; left alone the same search refutes."""
    network, region, rows = robust_by_a_margin(rng)
    polls = []

    def cancel() -> bool:
        polls.append(True)
        return len(polls) > 2

    cancelled = branch_and_bound(network, region, rows, BabOptions(batch=1), cancel=cancel)
    assert cancelled.status == "open" and len(polls) == 3
    assert cancelled.bound <= 0.05 + 1e-9  # v = level − margin ≥ 0.05 everywhere
    assert branch_and_bound(network, region, rows, BabOptions(batch=1)).status == "refuted"


def test_a_search_resumed_in_pieces_refutes_as_one_search_does(rng):
    """A search run ten subdomains at a time, each call resuming the last one's frontier,
    ends "refuted" as one uninterrupted search does, every bound on the way below the optimum."""
    network, region, rows = robust_by_a_margin(rng)
    assert branch_and_bound(network, region, rows, BabOptions(batch=1)).status == "refuted"
    result, calls = None, 0
    while result is None or result.status == "open":
        piece = BabOptions(batch=1, max_subdomains=(result.visited if result else 0) + 10)
        result = branch_and_bound(network, region, rows, piece, resume=result)
        assert result.bound <= 0.05 + 1e-9  # v = level − margin ≥ 0.05 everywhere
        calls += 1
    assert result.status == "refuted" and calls > 1
