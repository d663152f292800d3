"""The slack MIP of a conjunction of output rows: ``max t`` s.t. ``c_k·y + t ≤ d_k`` for every ``k``.

Over the encoded network (``y = f(x)``, ``x`` in the region), the optimum ``t*`` is the
largest smallest slack ``max_x min_k (d_k − c_k·f(x))``: a point with ``t ≥ 0`` satisfies
every row, and a dual bound ``t* ≤ −τ`` proves no point does, once ``τ`` is at least what
the solver's tolerances can move ``t`` (:func:`slack_tolerance`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from prunemip.encoders.mip_model import MipModel, NameBlock
from prunemip.solvers.highs import HighsOptions

#: An "unsat" ("robust") proof needs HiGHS to prove the slack ≤ −τ with τ at least this, and at
#: least what HiGHS's feasibility tolerances can move the slack on the model
#: (``MipModel.tolerance_effect``): a smaller proven margin is not a proof.
ROBUST_TOLERANCE = 1e-6


def with_slack_rows(model: MipModel, coefficients: np.ndarray, rhs: np.ndarray) -> MipModel:
    """Add a free column ``t`` and rows ``c_k·y + t ≤ d_k``; maximise ``t``.

    Args:
        model: the encoded network.
        coefficients: ``C``, shape ``(rows, n_outputs)``.
        rhs: ``d``, shape ``(rows,)``.

    Returns:
        The model whose optimum is the smallest slack ``min_k (d_k − c_k·y)``, maximised.
    """
    n_rows, n_cols = model.n_rows, model.n_cols
    C = np.atleast_2d(np.asarray(coefficients, dtype=np.float64))
    row_index = np.repeat(np.arange(len(C)), C.shape[1])
    column_index = np.tile(model.output_columns, len(C))
    rows = sp.csr_matrix((C.ravel(), (row_index, column_index)), shape=(len(C), n_cols))
    t_column = sp.csr_matrix(np.vstack([np.zeros((n_rows, 1)), np.ones((len(C), 1))]))
    matrix = sp.hstack([sp.vstack([model.matrix, rows]), t_column]).tocsc()
    matrix.eliminate_zeros()
    objective = np.zeros(n_cols + 1)
    objective[-1] = 1.0
    return replace(
        model,
        matrix=matrix,
        row_lower=np.concatenate([model.row_lower, np.full(len(C), -np.inf)]),
        row_upper=np.concatenate([model.row_upper, np.asarray(rhs, dtype=np.float64).reshape(-1)]),
        col_lower=np.append(model.col_lower, -np.inf),
        col_upper=np.append(model.col_upper, np.inf),
        integrality=np.append(model.integrality, False),
        objective=objective,
        objective_offset=0.0,
        maximize=True,
        column_blocks=(*model.column_blocks, NameBlock("slack", np.array([""]))),
        row_blocks=(*model.row_blocks, NameBlock("property_", np.arange(len(C)))),
    )


def slack_tolerance(model: MipModel, coefficients: np.ndarray, options: HighsOptions) -> float:
    """τ for ``t`` of :func:`with_slack_rows`: ``t`` moves with ``y`` at most as fast as
    ``max_k |c_k|`` per output, so ``MipModel.tolerance_effect`` of that objective bounds
    how far HiGHS's feasibility tolerances can move it (at least ``ROBUST_TOLERANCE``).

    Args:
        model: the slack model.
        coefficients: ``C``, shape ``(rows, n_outputs)``.
        options: the HiGHS options of the solve.

    Returns:
        τ: a proof needs a dual bound ``t* ≤ −τ``.
    """
    weights = np.max(np.abs(np.atleast_2d(coefficients)), axis=0)
    cost = np.zeros(model.n_cols)
    cost[model.output_columns] = weights
    feasibility = options.feasibility_tolerance  # HiGHS's bound on row and integrality violations
    effect = model.with_objective(cost, maximize=True).tolerance_effect(feasibility, feasibility)
    return max(ROBUST_TOLERANCE, effect)
