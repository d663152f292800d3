"""Optimisation over a learned surrogate: a pruned and a dense network inside one Pyomo model.

The story. A plant runs a process with 8 settings ``x ∈ [0, 1]^8`` (normalised feed
rates, temperatures, times). Its yield is an unknown smooth function of the settings;
what we have is 4000 noisy historical measurements. We

1. fit an MLP surrogate ``ŷ(x)`` (8-64-64-1, ReLU) to the measurements (PyTorch);
2. make a copy with 90 % of its hidden-layer weights pruned (iterative global
   magnitude pruning through ``torch.nn.utils.prune``, with masked fine-tuning; the
   output layer stays dense);
3. choose the settings that maximise the predicted yield under the plant's linear
   side constraints, with each network embedded in the same Pyomo model through
   prunemip's block and solved by HiGHS (``appsi_highs``)::

       max  ŷ(x)   s.t.  c·x ≤ B        (operating budget)
                         x_0 + x_1 ≤ 1.2  (a shared feed line)
                         0 ≤ x ≤ 1

For each network it prints the predicted optimum, the true yield at the chosen
settings, the solve and build times, binaries and nonzeros, and checks that the
solution's output equals a float64 forward pass of the network at its inputs. The
best historical operating point that meets the constraints is the baseline.

Run::

    python examples/surrogate_optimisation.py
    python examples/surrogate_optimisation.py --quick    # small settings (what the tests run)

Needs the ``dev`` extra (pyomo).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyomo.environ as pyo
import torch
from pyomo.opt import TerminationCondition
from torch import nn
from torch.nn.utils import prune

from prunemip.embed.pyomo import network_block
from prunemip.network import InputSpec, Network
from prunemip.torch_io import network_from_module

N_FEATURES = 8
#: Operating cost per unit of each setting, and the budget.
COSTS = np.array([3.0, 2.0, 4.0, 1.0, 2.0, 3.0, 1.0, 5.0])
BUDGET = 8.0
FEED_LIMIT = 1.2


@dataclass(frozen=True)
class Settings:
    hidden: tuple[int, ...] = (64, 64)
    samples: int = 4000
    noise: float = 0.05
    epochs: int = 100
    sparsity: float = 0.9
    finetune_epochs: int = 60
    batch_size: int = 64
    time_limit: float = 120.0
    seed: int = 0


QUICK = Settings(hidden=(16, 16), samples=800, epochs=40, finetune_epochs=15, time_limit=30.0)


# ----------------------------------------------------------------------------- the plant
def true_yield(x: np.ndarray) -> np.ndarray:
    """The process response the optimiser never sees: saturating gains plus interactions."""
    x = np.atleast_2d(x)
    gains = np.array([1.0, 0.8, 1.2, 0.6, 0.9, 0.7, 0.5, 1.1])
    rates = np.array([3.0, 5.0, 2.0, 4.0, 6.0, 2.5, 3.5, 1.5])
    value = (gains * (1.0 - np.exp(-rates * x))).sum(axis=1)
    value += 0.8 * x[:, 0] * x[:, 2] - 1.5 * (x[:, 3] - 0.4) ** 2 - 0.6 * x[:, 4] * x[:, 5]
    return value + 0.3 * np.sin(3.0 * x[:, 6])


def feasible(x: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    x = np.atleast_2d(x)
    return (
        (x @ COSTS <= BUDGET + tol)
        & (x[:, 0] + x[:, 1] <= FEED_LIMIT + tol)
        & np.all((x >= -tol) & (x <= 1 + tol), axis=1)
    )


def measurements(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(settings.seed)
    # historical operation: mostly cautious settings, some bold ones
    x = rng.beta(1.2, 2.0, size=(settings.samples, N_FEATURES))
    y = true_yield(x) + rng.normal(0.0, settings.noise, settings.samples)
    return x, y


# ----------------------------------------------------------------------------- surrogates
def _mlp(hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = N_FEATURES
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, settings: Settings) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(epochs, 1))
    generator = torch.Generator().manual_seed(settings.seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(x[batch]).squeeze(1), y[batch])
            loss.backward()
            optimiser.step()
        schedule.step()


def train_surrogates(settings: Settings) -> tuple[Network, Network, dict[str, float]]:
    """The dense surrogate, its pruned copy, and their R² on held-out measurements."""
    torch.manual_seed(settings.seed)
    x, y = measurements(settings)
    split = int(0.8 * len(x))
    x_train = torch.tensor(x[:split], dtype=torch.float32)
    y_train = torch.tensor(y[:split], dtype=torch.float32)
    model = _mlp(settings.hidden)
    _fit(model, x_train, y_train, settings.epochs, settings)
    spec = InputSpec.create(N_FEATURES, 0.0, 1.0)
    dense = network_from_module(model, spec)

    # Iterative global magnitude pruning of the hidden layers' weights (the output layer stays
    # dense): three rounds, each followed by fine-tuning with the masks fixed.
    parameters = [(layer, "weight") for layer in model if isinstance(layer, nn.Linear)][:-1]
    rounds, remaining = 3, 1.0
    for step in range(1, rounds + 1):
        keep = (1.0 - settings.sparsity) ** (step / rounds)
        amount = 1.0 - keep / remaining  # torch applies it to the weights still unpruned
        prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=amount)
        remaining = keep
        _fit(model, x_train, y_train, max(settings.finetune_epochs // rounds, 1), settings)
    pruned = network_from_module(model, spec)  # reads weight_orig * weight_mask

    def r2(network: Network) -> float:
        prediction = network.forward(x[split:]).reshape(-1)
        return float(1.0 - np.mean((prediction - y[split:]) ** 2) / np.var(y[split:]))

    return dense, pruned, {"dense": r2(dense), "pruned": r2(pruned)}


# ----------------------------------------------------------------------------- the optimisation
def plan(network: Network, settings: Settings) -> dict[str, Any]:
    """Maximise the surrogate's predicted yield under the plant's constraints (Pyomo + HiGHS)."""
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(N_FEATURES), bounds=(0.0, 1.0))
    model.budget = pyo.Constraint(expr=sum(float(COSTS[k]) * model.x[k] for k in range(N_FEATURES)) <= BUDGET)
    model.feed = pyo.Constraint(expr=model.x[0] + model.x[1] <= FEED_LIMIT)
    start = time.perf_counter()
    model.surrogate = network_block(network, inputs=model.x)  # the one line that embeds the network
    build_seconds = time.perf_counter() - start
    model.objective = pyo.Objective(expr=model.surrogate.outputs[0], sense=pyo.maximize)

    start = time.perf_counter()
    result = pyo.SolverFactory("appsi_highs").solve(
        model,
        timelimit=settings.time_limit,
        options={"mip_rel_gap": 1e-6, "threads": 1, "random_seed": settings.seed},
        load_solutions=False,
    )
    solve_seconds = time.perf_counter() - start
    condition = result.solver.termination_condition
    row: dict[str, Any] = {
        "status": str(condition),
        "build_s": build_seconds,
        "solve_s": solve_seconds,
        "binaries": model.surrogate.stats.binaries,
        "nonzeros": model.surrogate.stats.nonzeros,
        "weights": network.nnz,
    }
    if condition != TerminationCondition.optimal:
        return row
    model.solutions.load_from(result)
    x = model.surrogate.input_values()
    row.update(
        x=x,
        predicted=float(pyo.value(model.objective)),
        true_yield=float(true_yield(x)[0]),
        forward_error=float(np.max(model.surrogate.get_error())),
        feasible=bool(feasible(x)[0]),
    )
    return row


def run(settings: Settings, log: Any = print) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads cost more than they give
    try:
        dense, pruned, r2 = train_surrogates(settings)
    finally:
        torch.set_num_threads(threads)
    x, _ = measurements(settings)
    historical = x[feasible(x)]
    baseline = float(true_yield(historical).max()) if len(historical) else float("nan")
    results = {"dense": plan(dense, settings), "pruned": plan(pruned, settings)}
    for name, row in results.items():
        row["r2"] = r2[name]
    header = (
        f"{'surrogate':<12} {'R²':>6} {'weights':>8} {'binaries':>8} {'nnz':>7} {'build s':>8} "
        f"{'solve s':>8} {'predicted':>10} {'true yield':>10}  status"
    )
    log(header)
    log("-" * len(header))
    for name, row in results.items():
        label = "dense" if name == "dense" else f"pruned {settings.sparsity:.0%}"
        log(
            f"{label:<12} {row['r2']:>6.3f} {row['weights']:>8} {row['binaries']:>8} {row['nonzeros']:>7} "
            f"{row['build_s']:>8.3f} {row['solve_s']:>8.3f} {row.get('predicted', float('nan')):>10.4f} "
            f"{row.get('true_yield', float('nan')):>10.4f}  {row['status']}"
        )
    log(f"best feasible historical operating point: true yield {baseline:.4f}")
    if results["pruned"]["solve_s"] > 0:
        log(f"solve time dense / pruned: {results['dense']['solve_s'] / results['pruned']['solve_s']:.1f}x")
    return {"results": results, "baseline": baseline, "settings": settings}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small networks, a few epochs (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sparsity", type=float, default=None, help="fraction of weights pruned (0.9)")
    parser.add_argument("--time-limit", type=float, default=None, help="HiGHS time limit per solve (s)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    settings = replace(settings, seed=args.seed)
    if args.sparsity is not None:
        settings = replace(settings, sparsity=args.sparsity)
    if args.time_limit is not None:
        settings = replace(settings, time_limit=args.time_limit)
    return run(settings)


if __name__ == "__main__":
    main()
