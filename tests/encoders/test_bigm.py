"""The big-M encoder: exact on fixed inputs, optimal like brute force, one entry per surviving weight."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from prunemip.encoders.bigm import FORMULATIONS, TINY, encode
from prunemip.encoders.bounds.interval import interval_bounds
from prunemip.encoders.mip_model import NeuronStatus
from prunemip.engine.attack import AttackOptions, find_adversarial_example
from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import solve
from prunemip.solvers.result import SolveStatus
from tests.conftest import (
    EXACT,
    ball_region,
    brute_force_margin,
    norms,
    random_network,
    sample_region,
    seeds,
    sparse_networks,
    tiny_networks,
)

formulations = st.sampled_from(FORMULATIONS)


def solved_outputs(model):
    result = solve(model, EXACT)
    assert result.status == SolveStatus.OPTIMAL, result
    return model.outputs_from_solution(result.solution), result


# ----------------------------------------------------------------------- (a) fixed input
@given(sparse_networks(), seeds, formulations, st.booleans())
def test_fixed_input_reproduces_forward_pass(network, seed, formulation, maximize):
    rng = np.random.default_rng(seed)
    x = rng.random(network.n_inputs)
    model = encode(network, InputRegion.box(x, x), formulation=formulation)
    # any objective: push a random combination of the logits either way
    cost = np.zeros(model.n_cols)
    cost[model.output_columns] = rng.normal(size=network.n_outputs)
    outputs, result = solved_outputs(model.with_objective(cost, maximize))
    np.testing.assert_allclose(outputs, network.forward(x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.inputs_from_solution(result.solution), x, atol=1e-9)


@given(sparse_networks(), seeds, norms, formulations, st.sampled_from([0.0, 0.05, 0.3, 1.5]))
def test_solution_from_input_is_feasible(network, seed, norm, formulation, radius):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    model = encode(network, region, formulation=formulation)
    for x in sample_region(region, rng, 20):
        values = model.solution_from_input(x)
        assert model.constraint_violation(values) <= 1e-9
        np.testing.assert_allclose(model.outputs_from_solution(values), network.forward(x), atol=1e-9)
        np.testing.assert_array_equal(model.inputs_from_solution(values), x)


@given(sparse_networks(max_hidden_layers=2), seeds, formulations)
def test_relu_output_and_identity_hidden_layers_reproduce_forward_pass(network, seed, formulation):
    rng = np.random.default_rng(seed)
    layers = list(network.layers)
    layers[-1] = Layer.create(layers[-1].weight, layers[-1].bias, "relu")
    layers[0] = Layer.create(layers[0].weight, layers[0].bias, "identity")
    network = Network(tuple(layers), network.input_spec)
    x = rng.random(network.n_inputs)
    model = encode(network, InputRegion.box(x, x), formulation=formulation)
    outputs, _ = solved_outputs(model)
    np.testing.assert_allclose(outputs, network.forward(x), atol=1e-6)


# ----------------------------------------------------------------------- (b) brute force
@given(tiny_networks(), seeds, norms, st.sampled_from([0.05, 0.2, 0.5, 1.0]), st.data())
def test_optimal_margin_equals_brute_force_over_activation_patterns(network, seed, norm, radius, data):
    rng = np.random.default_rng(seed)
    if data.draw(st.booleans(), label="identity first layer"):
        layers = list(network.layers)
        layers[0] = Layer.create(layers[0].weight, layers[0].bias, "identity")
        network = Network(tuple(layers), network.input_spec)
    region = ball_region(network, rng.random(network.n_inputs), norm, radius)
    label = data.draw(st.integers(0, network.n_outputs - 1))
    target = data.draw(st.integers(0, network.n_outputs - 2))
    target += target >= label
    expected = brute_force_margin(network, region, target, label)
    assert expected is not None
    for formulation in FORMULATIONS:
        model = encode(network, region, formulation=formulation).with_margin_objective(target, label)
        result = solve(model, EXACT)
        assert result.status == SolveStatus.OPTIMAL
        assert result.objective == pytest.approx(expected, abs=1e-6, rel=1e-6), formulation
        # the optimiser is a real point: its forward-pass margin is the optimum
        x = region.project(model.inputs_from_solution(result.solution))
        logits = network.forward(x)
        assert logits[target] - logits[label] == pytest.approx(expected, abs=1e-6, rel=1e-6)


def test_brute_force_on_a_hand_made_network():
    """|x1 − x2| − 0.4 over [0.2, 0.8]²: max 0.2 at a corner, needs both ReLU branches."""
    w1 = np.array([[1.0, -1.0], [-1.0, 1.0]])
    w2 = np.array([[0.0, 0.0], [1.0, 1.0]])
    network = Network.from_arrays([w1, w2], [np.zeros(2), np.array([0.0, -0.4])], InputSpec.create(2, 0, 1))
    for norm, radius, expected in (("linf", 0.3, 0.2), ("l1", 0.3, -0.1), ("l1", 0.6, 0.2)):
        region = ball_region(network, np.array([0.5, 0.5]), norm, radius)
        assert brute_force_margin(network, region, 1, 0) == pytest.approx(expected)
        for formulation in FORMULATIONS:
            model = encode(network, region, formulation=formulation).with_margin_objective(1, 0)
            assert model.stats.binaries == 2
            assert solve(model, EXACT).objective == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------- (c) sizes
def expected_size(network: Network, bounds, formulation: str, norm: str) -> dict[str, int]:
    """Rows, columns, nonzeros and binaries of the big-M MIP, counted from the network alone.

    Written independently of the encoder, with dense per-neuron loops:
    a neuron is *variable* if it has a nonzero weight from a variable neuron of the
    previous layer (inputs are variable) and is not stably inactive; it is *live* if it is
    an output or feeds a live variable neuron of the next layer.
    """
    n0 = network.n_inputs
    variable = [np.ones(n0, dtype=bool)]
    kinds = []
    for k, layer in enumerate(network.layers):
        W = layer.weight.toarray()
        has_input = np.array([np.any((W[j] != 0) & variable[-1]) for j in range(layer.n_out)])
        if layer.activation == "relu":
            lo, hi = bounds.lower[k], bounds.upper[k]
            kind = np.where(hi <= 0, "inactive", np.where(lo >= 0, "active", "unstable"))
        else:
            kind = np.full(layer.n_out, "linear")
        kind = np.where(has_input, kind, "constant")
        kinds.append(kind)
        variable.append(has_input & (kind != "inactive"))
    live = [None] * len(network.layers)
    live[-1] = variable[-1].copy()
    for k in range(len(network.layers) - 2, -1, -1):
        W_next = network.layers[k + 1].weight.toarray()
        feeds = np.array([np.any((W_next[:, j] != 0) & live[k + 1]) for j in range(W_next.shape[1])])
        live[k] = variable[k + 1] & feeds
    rows = cols = nnz = binaries = 0
    cols += n0
    if norm == "l1":
        cols += 2 * n0
        rows += n0 + 1
        nnz += 3 * n0 + 2 * n0
    previous_live = np.ones(n0, dtype=bool)
    for k, layer in enumerate(network.layers):
        W = layer.weight.toarray()
        is_output = k == len(network.layers) - 1
        for j in range(layer.n_out):
            if not live[k][j]:
                if is_output:
                    cols += 1  # a fixed column, so that every logit can be read back
                continue
            w = int(np.count_nonzero((W[j] != 0) & previous_live))
            cols += 1
            if kinds[k][j] in ("active", "linear"):
                rows += 1
                nnz += w + 1
            else:  # unstable
                binaries += 1
                if formulation == "substituted":
                    cols += 1
                    rows += 3
                    nnz += (w + 1) + (w + 2) + 2
                else:
                    cols += 2
                    rows += 4
                    nnz += (w + 1) + 2 + 3 + 2
        previous_live = live[k]
    return {"rows": rows, "columns": cols, "nonzeros": nnz, "binaries": binaries}


@given(sparse_networks(sparsities=(0.3, 0.6, 0.8)), seeds, norms, formulations)
def test_matrix_has_one_entry_per_surviving_weight(network, seed, norm, formulation):
    rng = np.random.default_rng(seed)
    region = ball_region(network, rng.random(network.n_inputs), norm, float(rng.choice([0.05, 0.3])))
    bounds = interval_bounds(network, region)
    model = encode(network, region, bounds, formulation=formulation)
    expected = expected_size(network, bounds, formulation, norm)
    stats = model.stats
    assert {k: getattr(stats, k) for k in expected} == expected
    assert model.matrix.nnz == expected["nonzeros"] == np.count_nonzero(model.matrix.data)
    assert model.integrality.sum() == stats.binaries
    live_unstable = sum(int(np.count_nonzero(enc.status == NeuronStatus.UNSTABLE)) for enc in model.layers)
    assert stats.binaries == live_unstable <= bounds.n_unstable


def pruned_network() -> Network:
    """A net with explicit zeros, an input-less neuron, an output-less neuron and a dead neuron.

    Layer 0 (4 → 5), inputs in [0, 1]:
      n0: unstable; n1: stored row of explicit zeros, bias 0.7 (constant 0.7);
      n2: stably inactive (bias −10); n3: stably active but no outgoing weight (removed);
      n4: unstable, its only input weight explicitly zero in one entry.
    Layer 1 (5 → 3): identity logits.
    """
    w0 = np.array(
        [
            [1.0, -1.0, 0.0, 0.5],
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0, 1.0],
            [0.5, 0.5, 0.0, 0.0],
            [0.0, 0.0, 2.0, -1.0],
        ]
    )
    b0 = np.array([0.1, 0.7, -10.0, 0.2, -0.3])
    w1 = np.array(
        [
            [1.0, 2.0, 3.0, 0.0, -1.0],
            [-1.0, 0.5, 1.0, 0.0, 1.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
        ]
    )
    b1 = np.array([0.0, 0.1, -0.2])
    rows, cols = np.nonzero(np.ones_like(w0, dtype=bool))
    stored = sp.csr_matrix((w0[rows, cols], (rows, cols)), shape=w0.shape)  # every zero stored
    network = Network.from_arrays([stored, w1], [b0, b1], InputSpec.create(4, 0, 1))
    assert network.layers[0].weight.nnz == 20 and network.layers[0].nnz == 11
    return network


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_pruned_neurons_get_no_column_and_constants_are_folded(formulation, norm):
    network = pruned_network()
    region = ball_region(network, np.full(4, 0.5), norm, 0.5)
    bounds = interval_bounds(network, region)
    model = encode(network, region, bounds, formulation=formulation)
    first, logits = model.layers
    S = NeuronStatus
    assert list(first.status) == [S.UNSTABLE, S.CONSTANT, S.INACTIVE, S.REMOVED, S.UNSTABLE]
    assert list(first.output_column >= 0) == [True, False, False, False, True]
    assert first.constant_value[1] == 0.7
    assert list(logits.status) == [S.LINEAR, S.LINEAR, S.CONSTANT]
    assert model.stats.binaries == 2 == int(np.count_nonzero(bounds.unstable(0)))
    expected = expected_size(network, bounds, formulation, norm)
    assert {k: getattr(model.stats, k) for k in expected} == expected
    # Neurons with no column appear in no name, and the constant 0.7 reaches the logits.
    names = model.column_names()
    assert not any(name in names for name in ("y1_1", "y1_2", "y1_3"))
    column = model.output_columns[2]
    # Folding 0.7·1 − 0.2 rounds in float64: the column holds a rigorous, ulp-wide interval.
    low, high = model.col_lower[column], model.col_upper[column]
    assert low <= 0.5 <= high and high - low <= 1e-14
    rng = np.random.default_rng(0)
    for x in sample_region(region, rng, 5):
        fixed = encode(network, InputRegion.box(x, x), formulation=formulation)
        outputs, _ = solved_outputs(fixed)
        np.testing.assert_allclose(outputs, network.forward(x), atol=1e-9)
        assert model.constraint_violation(model.solution_from_input(x)) <= 1e-12


def test_whole_layer_inactive_leaves_only_fixed_logits(rng):
    network = random_network(rng, [3, 4, 5, 2], 0.0)
    layers = list(network.layers)
    layers[0] = Layer.create(layers[0].weight, np.full(4, -100.0))
    network = Network(tuple(layers), network.input_spec)
    region = ball_region(network, np.full(3, 0.5), "linf", 0.5)
    model = encode(network, region)
    assert model.stats.binaries == 0 and model.n_rows == 0
    assert [enc.count(NeuronStatus.CONSTANT) for enc in model.layers] == [0, 5, 2]
    margin_model = model.with_margin_objective(1, 0)
    result = solve(margin_model, EXACT)
    logits = network.forward(np.full(3, 0.5))
    assert result.objective == pytest.approx(logits[1] - logits[0], abs=1e-12)


def test_empty_hidden_layer(rng):
    network = Network.from_arrays(
        [np.zeros((0, 3)), np.zeros((2, 0))], [np.zeros(0), np.array([1.0, 2.0])], InputSpec.create(3, 0, 1)
    )
    model = encode(network, ball_region(network, np.full(3, 0.5), "l1", 0.2))
    outputs, _ = solved_outputs(model)
    np.testing.assert_array_equal(outputs, [1.0, 2.0])


def test_eps_zero_and_fixed_inputs_in_l1(rng):
    network = random_network(rng, [3, 6, 2], 0.3)
    lo, hi = np.array([0.0, 0.3, 0.0]), np.array([1.0, 0.3, 1.0])
    network = network.with_input_spec(InputSpec.create(3, lo, hi))
    x0 = np.array([0.5, 0.3, 1.0])  # one input fixed, one at its upper end
    for radius in (0.0, 0.4):
        region = InputRegion.ball("l1", x0, radius, lo, hi)
        for formulation in FORMULATIONS:
            model = encode(network, region, formulation=formulation).with_margin_objective(1, 0)
            result = solve(model, EXACT)
            x = model.inputs_from_solution(result.solution)
            assert region.contains(region.project(x))
            assert abs(x[1] - 0.3) <= 1e-9 and x[2] <= 1.0 + 1e-9
            expected = brute_force_margin(network, region, 1, 0)
            assert result.objective == pytest.approx(expected, abs=1e-7)


# ----------------------------------------------------------------------- (d) errors
def test_margin_objective_rejects_bad_target_and_label(rng):
    network = random_network(rng, [2, 3, 3], 0.0)
    model = encode(network, ball_region(network, np.full(2, 0.5), "linf", 0.1))
    for target, label in ((3, 0), (0, 3), (-1, 0), (0, -1), (1, 1)):
        with pytest.raises(ValueError) as error:
            model.with_margin_objective(target, label)
        assert "\n" not in str(error.value)
    cost = model.with_margin_objective(2, 0).objective
    assert cost[model.output_columns[2]] == 1.0 and cost[model.output_columns[0]] == -1.0
    assert np.count_nonzero(cost) == 2


def test_encode_rejects_mismatched_inputs(rng):
    network = random_network(rng, [2, 3, 3], 0.0)
    region = ball_region(network, np.full(2, 0.5), "linf", 0.1)
    with pytest.raises(PrunemipError, match="formulation"):
        encode(network, region, formulation="convex-hull")
    with pytest.raises(PrunemipError, match="inputs"):
        encode(network, InputRegion.box(np.zeros(3), np.ones(3)))
    other = random_network(rng, [2, 4, 3], 0.0)
    with pytest.raises(PrunemipError, match="bounds"):
        encode(network, region, interval_bounds(other, region))


def test_tiny_weights_never_reach_the_solver_and_robustness_stays_sound():
    """Regression: HiGHS drops matrix entries ≤ 1e-9. A weight of 1e-10 feeding a weight of
    1e10 moves the margin by up to 0.5; dropping it silently made a non-robust input "robust"."""
    network = Network.from_arrays(
        [np.array([[1e-10, 0.0], [0.0, 1.0]]), np.array([[0.0, 0.0], [1e10, 0.0]])],
        [np.zeros(2), np.array([0.5, 0.0])],
        InputSpec.create(2, 0.0, 1.0),
    )
    x0 = np.array([0.2, 0.5])
    assert network.predict(x0) == 0
    region = InputRegion.ball("linf", x0, 0.8, 0.0, 1.0)
    for formulation in FORMULATIONS:
        model = encode(network, region, formulation=formulation)
        assert np.min(np.abs(model.matrix.data)) > TINY
        # Still a relaxation: every true point of the region satisfies every row.
        for x in (x0, np.array([1.0, 0.0]), np.array([0.0, 1.0])):
            assert model.constraint_violation(model.solution_from_input(x)) <= 1e-12
        for mode in ("decide", "optimize"):
            result = find_adversarial_example(
                network, x0, 0, region, options=AttackOptions(mode=mode, formulation=formulation)
            )
            assert result.status != "robust"


def test_absurd_magnitudes_are_refused():
    huge = Network.from_arrays([np.array([[1e13, 1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)])
    region = InputRegion.box(np.zeros(2), np.ones(2))
    with pytest.raises(PrunemipError, match="numerically meaningless"):
        encode(huge, region)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_tolerance_effect_by_hand_skips_neurons_without_a_column(formulation):
    """x ∈ [0, 1]; z_A = x + 1 is stably active, z_B = x − 5 stably inactive; the margin is
    o0 − o1 with o0 = 2·y_A + 1000·y_B, o1 = 3·y_A. Sensitivities: the outputs 1 each, y_A
    |2| + |3| = 5, y_B none (it is the constant 0, not a column), the input 1·5: the effect
    is (1 + 1 + 5 + 5)·f = 12f, not 2012f through y_B's weight."""
    network = Network.from_arrays(
        [np.array([[1.0], [1.0]]), np.array([[2.0, 1000.0], [3.0, 0.0]])],
        [np.array([1.0, -5.0]), np.zeros(2)],
        InputSpec.create(1, 0.0, 1.0),
    )
    region = InputRegion.box(np.zeros(1), np.ones(1))
    model = encode(network, region, interval_bounds(network, region), formulation=formulation)
    assert list(model.layers[0].status) == [NeuronStatus.ACTIVE, NeuronStatus.INACTIVE]
    objective = model.with_margin_objective(0, 1)
    assert objective.tolerance_effect(1e-6, 1e-3) == pytest.approx(12e-6, rel=1e-12)
