"""Surrogate mode (Pham, Ren, Tahir, Tong, Serra, arXiv 2505.01985, 2025).

The dense network is given; its pruned copy is a cheaper surrogate. Maximise the
pruned network's margin with HiGHS and check every incumbent on the dense network,
stopping at the first input the dense network misclassifies. The question answered is
practical: how often, and how fast, does the small MIP hand over an adversarial example
for the big network?
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from prunemip.encoders.bigm import encode
from prunemip.engine.attack import target_order
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.bounds import compute_bounds
from prunemip.solvers.highs import HighsOptions, solve
from prunemip.solvers.result import SolveStatus
from prunemip.study.jobs import SolveJob


def dense_margin(dense: Network, x: np.ndarray, label: int, target: int | None) -> float:
    """``target``'s logit (or the largest wrong one) minus the label's, on the dense network.

    Args:
        dense: the dense network.
        x: the input, shape ``(n_inputs,)``.
        label: the true class.
        target: the rival class (``None``: the largest wrong logit).

    Returns:
        The margin; > 0 means ``x`` is adversarial for the dense network.
    """
    logits = dense.forward(x)
    rival = np.max(np.delete(logits, label)) if target is None else logits[target]
    return float(rival - logits[label])


def surrogate_task(
    pruned: Network, dense: Network, x0: np.ndarray, label: int, job: SolveJob
) -> dict[str, Any]:
    """Search the pruned MIP for an input adversarial for the dense network; return the record.

    Args:
        pruned: the pruned network whose MIP is solved.
        dense: the dense network every incumbent is checked on.
        x0: the clean image, flat.
        label: its true class.
        job: the perturbation, target rule, bounds, time limit and solver seed.

    Returns:
        The record's outcome fields (``status``, ``found``, ``seconds``, ...).
    """
    start = time.perf_counter()
    spec = dense.input_spec
    region = InputRegion.ball(job.perturbation.norm, x0, job.perturbation.radius, spec.lower, spec.upper)
    if int(dense.predict(x0)) != label:
        return {"status": "misclassified", "found": False, "seconds": time.perf_counter() - start}
    model = encode(pruned, region, compute_bounds(pruned, region, job.bounds, time_limit=job.time_limit))
    # The same target rule as the dense attack: the dense network's runner-up, or any class.
    order = target_order(dense.forward(x0), label)
    targets = order[:1] if job.target == "runner-up" else order
    wanted = order[0] if job.target == "runner-up" else None
    checked = 0
    found: dict[str, Any] | None = None
    pruned_status = None
    for target in targets:
        remaining = job.time_limit - (time.perf_counter() - start)
        if remaining <= 0:
            break
        objective = model.with_margin_objective(target, label)

        def adversarial_for_dense(
            values: np.ndarray, objective: Any = objective, target: int = target
        ) -> bool:
            nonlocal checked, found
            checked += 1
            x = region.project(objective.inputs_from_solution(values))
            margin = dense_margin(dense, x, label, wanted)
            if margin > 0.0:  # re-checked by the dense forward pass at a point inside the region
                found = {"x": x, "margin": margin, "seconds": time.perf_counter() - start, "target": target}
                return True
            return False

        options = HighsOptions(time_limit=remaining, threads=1, random_seed=job.solver_seed)
        result = solve(
            objective, options, start=objective.solution_from_input(x0), on_incumbent=adversarial_for_dense
        )
        pruned_status = result.status.value
        if found is not None or result.status == SolveStatus.TIME_LIMIT:
            break
    record: dict[str, Any] = {
        "status": "adversarial" if found else ("timeout" if pruned_status == "time_limit" else "not_found"),
        "found": found is not None,
        "seconds": found["seconds"] if found else time.perf_counter() - start,
        "pruned_status": pruned_status,
        "incumbents_checked": checked,
        "margin": found["margin"] if found else None,
        "target": found["target"] if found else None,
    }
    if found:
        record["x0"] = [float(v) for v in x0]
        record["x_adv"] = [float(v) for v in found["x"]]
    return record
