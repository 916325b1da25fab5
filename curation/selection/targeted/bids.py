"""BIDS (Dai et al., 2025; methods spec section 8): balanced multi-task selection from a train x target matrix.

Some tasks have systematically larger influence values, so selecting by raw scores lets them swallow the budget.
BIDS (1) z-scores every target column across training examples (columns with std below ``1e-12`` become zero),
(2) takes each task's score as the mean of its z-scored columns, and (3) fills the budget one example at a time:
the task with the lowest mean score over the current selection (0 for an empty selection; ties -> first task)
gets its best unselected example. Each task keeps a sorted candidate list and a pointer, and coverage sums are
updated incrementally, so the loop is ``O(B T)`` after sorting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from curation.errors import DataContractError
from curation.selection.targeted.scores import TargetedScores


def zscore_columns(matrix: np.ndarray) -> np.ndarray:
    """Each column centred and scaled to unit standard deviation across rows (near-constant columns -> 0)."""
    a = np.asarray(matrix, dtype=np.float64)
    std = a.std(axis=0)
    out = (a - a.mean(axis=0)) / np.where(std < 1e-12, 1.0, std)
    out[:, std < 1e-12] = 0.0
    return out


def balanced_order(task_scores: np.ndarray, budget: int) -> np.ndarray:
    """Rows chosen by BIDS's iterative balancing from ``[n, T]`` task scores, in selection order."""
    n, n_tasks = task_scores.shape
    if not 0 <= budget <= n:
        raise DataContractError(f"BIDS: budget {budget} must lie in [0, {n}]")
    ranked = np.argsort(-task_scores, axis=0, kind="stable")  # per task, best first (ties: row order)
    pointer = np.zeros(n_tasks, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    sums = np.zeros(n_tasks)
    order = np.empty(budget, dtype=np.int64)
    for step in range(budget):
        t = int(np.argmin(sums))  # argmin of the mean = argmin of the sum (same |S| for every task)
        while taken[ranked[pointer[t], t]]:
            pointer[t] += 1
        row = ranked[pointer[t], t]
        taken[row] = True
        sums += task_scores[row]
        order[step] = row
    return order


@dataclass(frozen=True, kw_only=True)
class BIDSConfig:
    """Budget of the balanced selection."""

    fraction: float = field(default=0.05, metadata={"help": "share of the pool to select"})
    normalize: bool = field(default=True, metadata={"help": "z-score target columns first (BIDS step 1)"})

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must lie in [0, 1], got {self.fraction}")


class BIDSSelector:
    """Registered as ``bids``: a LESS-style train x target matrix -> a task-balanced selection."""

    name: ClassVar[str] = "bids"
    config_cls: ClassVar[type] = BIDSConfig

    def __init__(self, config: BIDSConfig | None = None) -> None:
        self.config = config or BIDSConfig()

    def task_scores(self, scores: TargetedScores) -> TargetedScores:
        """The matrix with its columns z-scored (when ``normalize``), as ``TargetedScores``."""
        matrix = zscore_columns(scores.matrix) if self.config.normalize else np.asarray(scores.matrix, np.float64)
        return TargetedScores(matrix, scores.tasks)

    def select(self, scores: TargetedScores, example_ids: pl.Series) -> pl.DataFrame:
        """``example_id, keep, rank`` (1-based selection order; unselected rows have null rank) in input order."""
        n = scores.matrix.shape[0]
        if len(example_ids) != n:
            raise DataContractError(f"BIDS: {len(example_ids)} example ids for a matrix of {n} rows")
        order = balanced_order(self.task_scores(scores).per_task(), int(np.ceil(self.config.fraction * n - 1e-9)))
        rank = np.full(n, np.nan)
        rank[order] = np.arange(1, len(order) + 1)
        return pl.DataFrame({"example_id": example_ids, "keep": ~np.isnan(rank),
                             "rank": pl.Series(rank, dtype=pl.Float64).fill_nan(None).cast(pl.Int64)})
