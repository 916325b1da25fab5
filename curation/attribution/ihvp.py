"""Influence scores from any inverse-Hessian-vector-product solver (exact, CG, LiSSA share this).

``score(z, q) = ∇f(q)ᵀ (H + λI)⁻¹ ∇ℓ(z)`` with ``H`` the Hessian (or Gauss-Newton matrix) of the mean training
loss at the final checkpoint: positive when up-weighting ``z`` lowers the query's measurement. Removing ``z`` from ``n`` training
examples changes the query measurement by about ``+score / n``. Self-influence is
``∇ℓ(z)ᵀ (H + λI)⁻¹ ∇ℓ(z)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from curation.attribution.base import ScoreResult, ScoringContext
from curation.attribution.objective import TrainingObjective, example_gradients
from curation.gradients import per_example_gradients
from curation.progress import progress_bar

Solver = Callable[[torch.Tensor], torch.Tensor]  # [P, k] right-hand sides -> [P, k] solutions


def score_with_solver(
    context: ScoringContext,
    make_solver: Callable[[TrainingObjective], Solver],
    *,
    self_influence: bool,
    curvature: Literal["hessian", "gauss_newton"] = "hessian",
    extras: dict | None = None,
) -> ScoreResult:
    """Precondition the query gradients with the solver, then dot them with every training gradient."""
    model = context.final_model
    modules = context.tracked(model)
    objective = TrainingObjective(context.adapter, model, context.train, modules, context.batch_size, curvature)
    solve = make_solver(objective)
    gq = example_gradients(
        context.adapter, model, context.queries, modules, target="measurement", batch_size=context.batch_size,
        description="query gradients",
    )
    pre_q = solve(gq.T.contiguous())  # [P, m]
    n = context.train.height
    matrix = np.empty((n, context.queries.height), dtype=np.float32)
    self_scores = np.full(n, np.nan, dtype=np.float64)
    with progress_bar(total=n, description="influence scores") as advance:
        for start, batch in zip(range(0, n, context.batch_size), objective.batches, strict=True):
            gt = per_example_gradients(context.adapter, model, batch, modules=modules)
            stop = start + gt.shape[0]
            matrix[start:stop] = (gt @ pre_q).detach().cpu().numpy()
            if self_influence:
                self_scores[start:stop] = (gt * solve(gt.T.contiguous()).T).sum(1).detach().cpu().numpy()
            advance(gt.shape[0])
    return ScoreResult(
        matrix=matrix,
        self_influence=self_scores,
        train_ids=context.train["example_id"].to_list(),
        query_ids=context.queries["example_id"].to_list(),
        extras=extras or {},
    )
