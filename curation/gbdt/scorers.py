"""BoostIn, TREX and LeafInfluence as registered scorers (entry-point group ``curation.tree_scorers``).

They take a ``TreeScoringContext`` (a tree-model adapter, its fitted model, the training table the model was fitted
on and a query table) and return the same ``ScoreResult`` as the neural scorers: a dense ``[n_train, n_query]``
matrix (positive = helpful: up-weighting the training row lowers the query's loss) and self-influence. The
neural ``ScoringContext`` holds torch checkpoints, which a booster is not; hence the separate group and context.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import polars as pl

from curation.attribution.base import ScoreResult
from curation.errors import DataContractError
from curation.gbdt.boostin import LEAF_VALUES, boostin
from curation.gbdt.ensemble import Trajectory, TreeEnsemble
from curation.gbdt.leaf_influence import UPDATE_SETS, leaf_influence
from curation.gbdt.trex import trex

log = logging.getLogger(__name__)

GROUP = "curation.tree_scorers"
NEWTON_TOLERANCE = 1e-4  # leaf-value gap beyond float32 rounding of LightGBM's gradients


@dataclass(frozen=True, kw_only=True)
class TreeScoringContext:
    """A tree model, the training table it was fitted on (every row: the leaf sums need them all) and queries."""

    adapter: Any
    model: Any
    train: pl.DataFrame
    queries: pl.DataFrame
    sources: tuple[str, str] = ("training table", "query table")  # named in errors (file paths from the CLI)

    def __post_init__(self) -> None:
        for name, frame in (("train", self.train), ("queries", self.queries)):
            if "example_id" not in frame.columns:
                raise DataContractError(f"{name} table: missing column 'example_id'")
            if frame.height == 0:
                raise DataContractError(f"{name} table: no rows")

    @cached_property
    def ensemble(self) -> TreeEnsemble:
        return self.adapter.ensemble(self.model, self.train)

    def _trajectory(self, frame: pl.DataFrame, where: str) -> Trajectory:
        x = self.adapter.features(self.model, frame, where=where)
        return self.ensemble.trajectory(x, self.adapter.labels(self.model, frame, where=where))

    @cached_property
    def train_trajectory(self) -> Trajectory:
        return self._trajectory(self.train, self.sources[0])

    @cached_property
    def query_trajectory(self) -> Trajectory:
        return self._trajectory(self.queries, self.sources[1])

    def result(self, matrix: np.ndarray, self_inf: np.ndarray) -> ScoreResult:
        """``ScoreResult`` with ids and the Newton-value check (how well the training table explains the leaves)."""
        mismatch = self.ensemble.newton_mismatch(self.train_trajectory)
        if mismatch > NEWTON_TOLERANCE:
            log.warning("training table does not reproduce the model's leaf values (largest gap %.3g): influence "
                        "is approximate; pass every row the model was fitted on", mismatch)
        return ScoreResult(matrix=matrix, self_influence=self_inf, train_ids=self.train["example_id"].to_list(),
                           query_ids=self.queries["example_id"].to_list(), extras={"newton_mismatch": mismatch})


@runtime_checkable
class TreeScorer(Protocol):
    """A registered tree influence method (entry-point group ``curation.tree_scorers``)."""

    name: ClassVar[str]
    config_cls: ClassVar[type]
    config: Any

    def score(self, context: TreeScoringContext) -> ScoreResult:
        """Train x query scores and self-influence."""

    def self_influence(self, context: TreeScoringContext) -> np.ndarray:
        """Self-influence ``[n_train]`` only (label-error ranking)."""


@dataclass(frozen=True, kw_only=True)
class BoostInConfig:
    """BoostIn options."""

    leaf_value: str = field(default="shrunk", metadata={
        "help": "leaf value in the leaf derivative: shrunk (stored output, as tree-influence) or newton (unshrunk)"})

    def __post_init__(self) -> None:
        if self.leaf_value not in LEAF_VALUES:
            raise ValueError(f"leaf_value must be one of {', '.join(LEAF_VALUES)}, got {self.leaf_value!r}")


class BoostInScorer:
    """BoostIn: TracIn for boosted trees, summed over the trees where train and query rows share a leaf."""

    name: ClassVar[str] = "boostin"
    config_cls: ClassVar[type] = BoostInConfig

    def __init__(self, config: BoostInConfig | None = None) -> None:
        self.config = config or BoostInConfig()

    def score(self, context: TreeScoringContext) -> ScoreResult:
        return context.result(*boostin(context.ensemble, context.train_trajectory, context.query_trajectory,
                                       leaf_value=self.config.leaf_value))

    def self_influence(self, context: TreeScoringContext) -> np.ndarray:
        return boostin(context.ensemble, context.train_trajectory, None, leaf_value=self.config.leaf_value)[1]


@dataclass(frozen=True, kw_only=True)
class TREXConfig:
    """TREX options."""

    lmbd: float = field(default=0.003, metadata={"help": "L2 regulariser of the kernel surrogate"})

    def __post_init__(self) -> None:
        if self.lmbd <= 0:
            raise ValueError(f"lmbd must be > 0, got {self.lmbd}")


class TREXScorer:
    """TREX: representer points of an L2-regularised surrogate on the weighted leaf-path tree kernel."""

    name: ClassVar[str] = "trex"
    config_cls: ClassVar[type] = TREXConfig

    def __init__(self, config: TREXConfig | None = None) -> None:
        self.config = config or TREXConfig()

    def score(self, context: TreeScoringContext) -> ScoreResult:
        return context.result(*trex(context.ensemble, context.train_trajectory, context.query_trajectory,
                                    lmbd=self.config.lmbd))

    def self_influence(self, context: TreeScoringContext) -> np.ndarray:
        return trex(context.ensemble, context.train_trajectory, None, lmbd=self.config.lmbd)[1]


@dataclass(frozen=True, kw_only=True)
class LeafInfluenceConfig:
    """LeafInfluence options."""

    update_set: int = field(default=-1, metadata={
        "help": "-1: track every training row's prediction (exact first order, O(n^2 trees)); 0: only the removed row"})
    chunk: int = field(default=256, metadata={"help": "removed rows processed together (memory chunk * n floats)"})

    def __post_init__(self) -> None:
        if self.update_set not in UPDATE_SETS:
            raise ValueError(f"update_set must be one of {UPDATE_SETS}, got {self.update_set}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")


class LeafInfluenceScorer:
    """LeafInfluence: influence functions for boosted trees with the tree structure held fixed."""

    name: ClassVar[str] = "leaf_influence"
    config_cls: ClassVar[type] = LeafInfluenceConfig

    def __init__(self, config: LeafInfluenceConfig | None = None) -> None:
        self.config = config or LeafInfluenceConfig()

    def score(self, context: TreeScoringContext) -> ScoreResult:
        return context.result(*leaf_influence(context.ensemble, context.train_trajectory, context.query_trajectory,
                                              update_set=self.config.update_set, chunk=self.config.chunk))

    def self_influence(self, context: TreeScoringContext) -> np.ndarray:
        return leaf_influence(context.ensemble, context.train_trajectory, None, update_set=self.config.update_set,
                              chunk=self.config.chunk)[1]
