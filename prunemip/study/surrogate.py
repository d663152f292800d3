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

from prunemip.engine.attack import target_order
from prunemip.engine.spec import attack_spec
from prunemip.engine.surrogate import search_surrogate
from prunemip.network import Network
from prunemip.regions import InputRegion
from prunemip.solvers.highs import HighsOptions
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

    The engine's surrogate search (:func:`~prunemip.engine.surrogate.search_surrogate`) on the
    attack's spec: the dense network's runner-up, or every class in the dense network's order
    (the time split evenly), each incumbent checked by the dense forward pass.

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
    # The same target rule as the dense attack: the dense network's runner-up, or any class.
    order = target_order(dense.forward(x0), label)
    targets = order[:1] if job.target == "runner-up" else order
    wanted = order[0] if job.target == "runner-up" else None
    found: dict[str, Any] = {}

    def adversarial_for_dense(x: np.ndarray) -> bool:
        point = region.project(x)
        margin = dense_margin(dense, point, label, wanted)
        if margin > 0.0 and not found:  # re-checked by the dense forward pass inside the region
            found.update(x=point, margin=margin, seconds=time.perf_counter() - start)
        return margin > 0.0

    search = search_surrogate(
        pruned,
        attack_spec(region, dense.n_outputs, label, targets),
        range(len(targets)),
        adversarial_for_dense,
        start + job.time_limit,
        bounds=job.bounds,
        highs=HighsOptions(threads=1, random_seed=job.solver_seed),
        starts=[x0],
    )
    pruned_status = None if search.status is None else search.status.value
    adversarial = search.found is not None
    status = "adversarial" if adversarial else "timeout" if pruned_status == "time_limit" else "not_found"
    record: dict[str, Any] = {
        "status": status,
        "found": adversarial,
        "seconds": found["seconds"] if adversarial else time.perf_counter() - start,
        "pruned_status": pruned_status,
        "incumbents_checked": search.checked,
        "margin": found["margin"] if adversarial else None,
        "target": targets[search.found] if search.found is not None else None,
    }
    if adversarial:
        record["x0"] = [float(v) for v in x0]
        record["x_adv"] = [float(v) for v in found["x"]]
    return record
