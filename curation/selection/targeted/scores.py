"""Train x target score matrices and their reductions, shared by the targeted scorers.

Orientation follows the methods spec: ``S [n_train, n_target]``, larger = the training example helps that target
more. A task's score of a training example is the mean over the task's target columns; the per-example score is
the maximum over tasks (LESS: "max over subtasks of the mean over the subtask's examples").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def weighted_cosine(train: Sequence[np.ndarray], target: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``sum_k w_k cos(train_k, target_k)`` as an ``[n_train, n_target]`` matrix."""
    return sum(w * (unit_rows(a) @ unit_rows(b).T) for w, a, b in zip(weights, train, target, strict=True))


@dataclass
class TargetedScores:
    """A score matrix with the task of each target column, reduced per task and per example."""

    matrix: np.ndarray
    tasks: np.ndarray

    @property
    def task_names(self) -> list[str]:
        """Tasks in order of first appearance among the target columns."""
        return list(dict.fromkeys(self.tasks.tolist()))

    def per_task(self) -> np.ndarray:
        """``[n_train, n_tasks]``: mean of each task's columns."""
        return np.stack([self.matrix[:, self.tasks == t].mean(axis=1) for t in self.task_names], axis=1)

    def score(self) -> np.ndarray:
        """``[n_train]``: the best task's score."""
        return self.per_task().max(axis=1)

    def to_frame(self, example_ids: pl.Series) -> pl.DataFrame:
        """``example_id, score`` (the Selector's input) plus one ``score_<task>`` column per task."""
        per_task = self.per_task()
        columns = {"example_id": example_ids, "score": per_task.max(axis=1)}
        columns |= {f"score_{t}": per_task[:, j] for j, t in enumerate(self.task_names)}
        return pl.DataFrame(columns)
