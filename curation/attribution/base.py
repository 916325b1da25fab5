"""What every attribution scorer receives, what it returns, and the protocol the registry and stages rely on.

Scorers are pure: a ``ScoringContext`` (adapter, checkpoints, train and query tables) goes in, a ``ScoreResult``
(dense ``[n_train, n_query]`` matrix, self-influence vector, ids) comes out; nothing is written. Sign convention for
every scorer: a positive score means up-weighting/including the training example *lowers* the query's loss-like
measurement (a "helpful" proponent). The stage decides where the matrix is stored and how many rows become frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import polars as pl
from torch import nn

from curation.errors import DataContractError
from curation.executors import ExecutorConfig
from curation.models.base import ModelAdapter


@dataclass(frozen=True, kw_only=True)
class CheckpointModel:
    """One model state with the learning rate in force when it was saved (TracIn weights by it)."""

    model: nn.Module
    learning_rate: float = 1.0


@dataclass(frozen=True, kw_only=True)
class ScoringContext:
    """Inputs shared by all scorers.

    ``checkpoints`` are in training order; influence functions use the last one (the final model), TracIn and
    TRAK may use all. ``modules`` restricts gradients to those module names (default: the adapter's tracked
    modules). ``executor`` says where gradient shards run (this process or Ray); scores agree up to float rounding.
    Tables must carry a unique ``example_id``; query ids are the query table's ``example_id``.
    """

    adapter: ModelAdapter
    checkpoints: tuple[CheckpointModel, ...]
    train: pl.DataFrame
    queries: pl.DataFrame
    modules: tuple[str, ...] | None = None
    batch_size: int = field(default=64)
    executor: ExecutorConfig | None = None  # where gradient shards run (None = this process)

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise ValueError("ScoringContext needs at least one checkpoint")
        for name, frame in (("train", self.train), ("queries", self.queries)):
            if "example_id" not in frame.columns:
                raise DataContractError(f"{name} table: missing column 'example_id'")
            if frame.height == 0:
                raise DataContractError(f"{name} table: no rows")

    @property
    def final_model(self) -> nn.Module:
        """The last checkpoint's model (what influence functions linearise around)."""
        return self.checkpoints[-1].model

    def tracked(self, model: nn.Module | None = None) -> list[str]:
        """Module names whose parameters are attributed."""
        return list(self.modules) if self.modules is not None else self.adapter.tracked_modules(
            model if model is not None else self.final_model
        )


@dataclass(frozen=True)
class ScoreResult:
    """Dense scores (``[n_train, n_query]``, positive = helpful), self-influence (``[n_train]``) and the ids."""

    matrix: np.ndarray
    self_influence: np.ndarray
    train_ids: Sequence[Any]
    query_ids: Sequence[Any]
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = len(self.train_ids), len(self.query_ids)
        if self.matrix.shape != (n, m):
            raise ValueError(f"score matrix has shape {self.matrix.shape}, expected ({n}, {m})")
        if self.self_influence.shape != (n,):
            raise ValueError(f"self-influence has shape {self.self_influence.shape}, expected ({n},)")

    def scores(self, top_k: int | None = None) -> pl.DataFrame:
        """Long frame ``example_id, score, query_id, rank`` (rank 1 = most helpful); ``top_k`` rows per query."""
        return score_frame(self.matrix, self.train_ids, self.query_ids, top_k=top_k)

    def self_influence_frame(self) -> pl.DataFrame:
        """Frame ``example_id, score`` of self-influence, in training-table order."""
        return pl.DataFrame({"example_id": list(self.train_ids), "score": self.self_influence.astype(np.float64)})


def score_frame(
    matrix: np.ndarray, train_ids: Sequence[Any], query_ids: Sequence[Any], *, top_k: int | None = None
) -> pl.DataFrame:
    """The ``top_k`` highest-scoring training examples per query (all when ``None``), as a long polars frame.

    NaN entries mean "not scored" (e.g. outside a query's pre-filtered candidates) and are left out.
    """
    n, m = matrix.shape
    k = n if top_k is None else min(int(top_k), n)
    order = np.argsort(np.where(np.isnan(matrix), np.inf, -matrix), axis=0, kind="stable")[:k]  # [k, m]
    train_ids = np.asarray(list(train_ids), dtype=object)
    frame = pl.DataFrame(
        {
            "example_id": train_ids[order.T.reshape(-1)].tolist(),
            "score": np.take_along_axis(matrix, order, axis=0).T.reshape(-1).astype(np.float64),
            "query_id": np.repeat(np.asarray(list(query_ids), dtype=object), k).tolist(),
            "rank": np.tile(np.arange(1, k + 1), m),
        }
    )
    return frame.filter(pl.col("score").is_not_nan())


@runtime_checkable
class Scorer(Protocol):
    """A registered attribution method (entry-point group ``curation.scorers``)."""

    name: ClassVar[str]
    config_cls: ClassVar[type]
    config: Any

    def score(self, context: ScoringContext) -> ScoreResult:
        """Train x query scores and self-influence for the context's tables."""

    def self_influence(self, context: ScoringContext) -> np.ndarray:
        """Self-influence ``[n_train]`` only (label-error ranking); may be cheaper than a full ``score``."""


class SelfInfluenceFromScore:
    """Mixin for scorers whose self-influence comes out of a full ``score`` (influence functions)."""

    def self_influence(self, context: ScoringContext) -> np.ndarray:
        """Self-influence from ``score`` on the context's tables."""
        return np.asarray(self.score(context).self_influence)
