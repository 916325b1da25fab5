"""Quad (Zhang et al. 2024; methods spec §11): a multi-armed bandit over k-means clusters of the pool that spends
influence computations on a few sampled rows per cluster instead of scoring every row.

1. Embed the pool (``curation.selection.embedding``) and k-means it into ``n_clusters`` clusters (arms).
2. Each iteration, take the ``clusters_per_iteration`` clusters with the highest Cluster Score
   ``CS_i = R̄_i + alpha * sqrt(2 ln N / (n_i + 1))`` (``R̄_i`` mean shared reward, ``n_i`` pulls including
   neighbour credit, ``N`` total pulls; exhausted clusters are masked), sample ``samples_per_cluster`` of their
   unseen rows and score them with a registered influence scorer (``ekfac`` or ``tracin`` via ``build_method``)
   against a sample of the target rows. A row's influence is its mean score over the target queries (positive =
   training on it lowers the target loss).
3. Before the bandit starts, one sweep scores ``samples_per_cluster`` rows of *every* cluster (no rows are
   selected in it). Rewards are z-scored with the mean and standard deviation of the sweep's row influences -- the
   spec's "z-score over the first iteration", with a first iteration that covers the pool, so ``reward > 0`` means
   "more helpful to the target than the pool's average row" and ``alpha`` means the same on any model. Without the
   sweep, the first clusters pulled set the zero point and, on a planted-domain test, a mediocre cluster that
   happened to be pulled first took the whole budget before the target's clusters were ever tried (7 of 20 seeds).
   A cluster's reward is its sampled rows' mean minus ``offset``; in the bandit phase a positive reward adds a
   block of ``block_size`` random unselected rows of that cluster to the selection. The reward is shared with
   every cluster whose centroid lies within cosine distance ``neighbor_radius``, weighted
   ``1 - d / neighbor_radius``.
4. Stop when ``keep_fraction`` of the pool is selected or after ``max_iterations``; a budget still open then is
   filled from the clusters in order of ``R̄`` (then cluster index), so every method compared at one budget gets it.

Output (issue ``off_target``): a row's selection score is its cluster's final ``R̄`` (z units), its
``is_off_target_issue`` is "not selected by the bandit", and extras give the cluster and the selection order.
With ``ekfac``, the curvature is fitted once on ``fit_rows`` random pool rows and reused by every iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.ekfac import EKFACInfluence
from curation.errors import DataContractError
from curation.models.base import ModelAdapter, load_adapter_model
from curation.plugins import build_method
from curation.progress import progress_bar
from curation.selection.embedding import EmbeddingConfig, TextEmbedding
from curation.selection.target_scores import ISSUE, SelectionScores, check_text_tables, selection_scores


@dataclass(frozen=True, kw_only=True)
class QuadConfig:
    """Settings of the Quad cluster bandit."""

    checkpoints: tuple[str, ...] = field(
        default=(), metadata={"help": "checkpoint files of a model trained on the pool (or a sample of it) that "
                                      "influence is computed with; empty = passed in by the caller"})
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig, metadata={"help": "text embedding"})
    n_clusters: int = field(default=50, metadata={"help": "k-means clusters (bandit arms)"})
    influence: dict[str, Any] = field(
        default_factory=lambda: {"name": "ekfac", "options": {}},
        metadata={"help": "registered curation.scorers method {name, options} giving the influence (ekfac, tracin)"},
    )
    clusters_per_iteration: int = field(default=5, metadata={"help": "clusters pulled per iteration"})
    samples_per_cluster: int = field(default=10, metadata={"help": "rows scored per pulled cluster"})
    block_size: int = field(default=100, metadata={"help": "rows a cluster with a positive reward adds"})
    offset: float = field(default=0.0, metadata={"help": "subtracted from a cluster's mean z-scored influence"})
    alpha: float = field(default=0.3, metadata={"help": "UCB exploration weight (rewards are in z units)"})
    neighbor_radius: float = field(default=0.2, metadata={"help": "centroid cosine distance sharing rewards"})
    n_queries: int = field(default=64, metadata={"help": "target rows used as influence queries (seeded sample)"})
    fit_rows: int = field(default=256, metadata={"help": "pool rows the EK-FAC curvature is fitted on"})
    max_iterations: int = field(default=200, metadata={"help": "bandit iterations before the budget is filled"})
    keep_fraction: float = field(default=0.1, metadata={"help": "share of the pool to select"})
    batch_size: int = field(default=32, metadata={"help": "rows per gradient batch of the influence scorer"})
    seed: int = field(default=0, metadata={"help": "seed of k-means, sampling and tie-breaking"})

    def __post_init__(self) -> None:
        counts = (self.n_clusters, self.clusters_per_iteration, self.samples_per_cluster, self.block_size,
                  self.n_queries, self.fit_rows, self.max_iterations, self.batch_size)
        if min(counts) < 1:
            raise ValueError("cluster, sample, block, query, row, iteration and batch counts must be >= 1")
        if not 0 < self.keep_fraction <= 1 or self.alpha < 0 or self.neighbor_radius < 0:
            raise ValueError("keep_fraction in (0, 1], alpha >= 0 and neighbor_radius >= 0 are required")
        if "name" not in self.influence:
            raise ValueError("influence must be a mapping {name, options}")


@dataclass
class _Bandit:
    """Shared-reward UCB state over clusters."""

    reward_sum: np.ndarray
    pulls: np.ndarray
    share: np.ndarray  # [k, k] neighbour weights (1 on the diagonal)
    total: int = 0

    def mean(self) -> np.ndarray:
        return np.where(self.pulls > 0, self.reward_sum / np.maximum(self.pulls, 1e-12), 0.0)

    def cluster_score(self, alpha: float) -> np.ndarray:
        bonus = np.sqrt(2 * math.log(max(self.total, 1)) / (self.pulls + 1)) if self.total > 1 else 0.0
        return self.mean() + alpha * bonus

    def update(self, cluster: int, reward: float) -> None:
        self.reward_sum += self.share[cluster] * reward
        self.pulls += self.share[cluster]
        self.total += 1


class QuadSelector:
    """Registered as ``quad``: cluster bandit with sampled EK-FAC/TracIn influence on the target."""

    name: ClassVar[str] = "quad"
    config_cls: ClassVar[type] = QuadConfig
    issue: ClassVar[str] = ISSUE

    def __init__(self, config: QuadConfig | None = None) -> None:
        self.config = config or QuadConfig()

    def score(self, pool: pl.DataFrame, target: pl.DataFrame, *, adapter: ModelAdapter | None = None,
              checkpoints: Sequence[CheckpointModel] | None = None) -> SelectionScores:
        """Select ``keep_fraction`` of ``pool`` for the ``target`` rows, with influence under ``adapter`` at the
        ``checkpoints`` (a model trained on the pool or a sample of it; default: the configured files)."""
        check_text_tables(pool, target, method=self.name)
        adapter, checkpoints = self._model(adapter, checkpoints)
        cfg, started = self.config, time.perf_counter()
        rng = np.random.default_rng(cfg.seed)
        budget = math.ceil(cfg.keep_fraction * pool.height - 1e-9)
        labels, share = self._clusters(pool, rng)
        k = share.shape[0]
        members = [rng.permutation(np.flatnonzero(labels == c)) for c in range(k)]
        unseen = [list(m) for m in members]  # rows not yet sampled for influence
        free = [list(rng.permutation(m)) for m in members]  # rows not yet selected
        queries = target.sample(min(cfg.n_queries, target.height), seed=cfg.seed)
        scorer = build_method("curation.scorers", cfg.influence, where=f"{self.name}.influence")
        factors = None
        if isinstance(scorer, EKFACInfluence):
            fit_rows = rng.choice(pool.height, min(cfg.fit_rows, pool.height), replace=False)
            factors = scorer.fit(self._context(adapter, checkpoints, pool[np.sort(fit_rows)], queries))
        bandit = _Bandit(np.zeros(k), np.zeros(k), share)
        tie = rng.permutation(k)
        order = np.full(pool.height, -1, dtype=np.int64)
        chosen = 0
        scale: tuple[float, float] = (0.0, 1.0)
        iterations = scored = 0

        def pull(clusters: list[int]) -> list[tuple[int, float]]:
            """Score a fresh sample of each cluster; (cluster, reward) after the normalisation."""
            nonlocal scale, scored
            samples = {c: [unseen[c].pop() for _ in range(min(cfg.samples_per_cluster, len(unseen[c])))]
                       for c in clusters}
            rows = np.concatenate([samples[c] for c in clusters])
            context = self._context(adapter, checkpoints, pool[rows], queries)
            result = scorer.score(context, factors=factors) if factors is not None else scorer.score(context)
            influence = np.asarray(result.matrix, dtype=np.float64).mean(1)
            if scored == 0:  # the sweep over every cluster: an estimate of the whole pool's influence
                scale = (float(influence.mean()), float(influence.std()) or 1.0)
            scored += rows.size
            z = (influence - scale[0]) / scale[1]
            bounds = np.cumsum([0] + [len(samples[c]) for c in clusters])
            return [(c, float(z[bounds[i] : bounds[i + 1]].mean()) - cfg.offset) for i, c in enumerate(clusters)]

        for c, reward in pull([c for c in range(k) if unseen[c]]):
            bandit.update(c, reward)
        with progress_bar(total=budget, description="quad selection") as advance:
            while chosen < budget and iterations < cfg.max_iterations:
                open_ = np.array([bool(free[c]) and bool(unseen[c]) for c in range(k)])
                if not open_.any():
                    break
                cs = np.where(open_, bandit.cluster_score(cfg.alpha), -np.inf)
                pulled = [int(c) for c in np.lexsort((tie, -cs))[: cfg.clusters_per_iteration] if open_[c]]
                for c, reward in pull(pulled):
                    bandit.update(c, reward)
                    if reward > 0:
                        chosen = self._take(free[c], min(cfg.block_size, budget - chosen), order, chosen, advance)
                iterations += 1
            for c in np.lexsort((tie, -bandit.mean())):  # fill an open budget by estimated reward
                chosen = self._take(free[int(c)], budget - chosen, order, chosen, advance)
        mean = bandit.mean()
        rank_in_order = np.where(order >= 0, order + 1, 0)
        return selection_scores(
            pool["example_id"].to_list(), mean[labels], method=self.name, keep_fraction=cfg.keep_fraction,
            flagged=order < 0, extras={"cluster": labels, "selection_order": rank_in_order},
            seconds=time.perf_counter() - started, iterations=iterations, rows_scored=scored, n_clusters=k,
            clusters_selected=int(np.unique(labels[order >= 0]).size),
        )

    def _model(self, adapter: ModelAdapter | None, checkpoints: Sequence[CheckpointModel] | None
               ) -> tuple[ModelAdapter, Sequence[CheckpointModel]]:
        if checkpoints is not None:
            if adapter is None or not checkpoints:
                raise DataContractError(f"{self.name}: pass an adapter and at least one checkpoint")
            return adapter, checkpoints
        if not self.config.checkpoints:
            raise DataContractError(f"{self.name}: no model: set options.checkpoints to checkpoint files of a model "
                                    "trained on the pool")
        loaded = [load_adapter_model(path) for path in self.config.checkpoints]
        return adapter or loaded[0][0], [CheckpointModel(model=m, learning_rate=lr) for _, m, lr in loaded]

    def _clusters(self, pool: pl.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Cluster label per row and the ``[k, k]`` reward-sharing weights of the centroids."""
        from sklearn.cluster import KMeans

        cfg = self.config
        texts = pool["text"].fill_null("").to_list()
        embedding = TextEmbedding(cfg.embedding).fit(texts)
        rows = embedding.encode(texts)
        k = min(cfg.n_clusters, pool.height)
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=int(rng.integers(2**31))).fit(rows)
        centroids = kmeans.cluster_centers_ / np.maximum(
            np.linalg.norm(kmeans.cluster_centers_, axis=1, keepdims=True), 1e-12)
        distance = 1.0 - centroids @ centroids.T
        share = np.clip(1.0 - distance / cfg.neighbor_radius, 0.0, 1.0) if cfg.neighbor_radius > 0 else np.zeros_like(
            distance)
        np.fill_diagonal(share, 1.0)
        return kmeans.labels_.astype(np.int64), share

    def _context(self, adapter: ModelAdapter, checkpoints: Sequence[CheckpointModel], train: pl.DataFrame,
                 queries: pl.DataFrame) -> ScoringContext:
        if "example_id" not in queries.columns:
            queries = queries.with_row_index("example_id")
        return ScoringContext(adapter=adapter, checkpoints=tuple(checkpoints), train=train, queries=queries,
                              batch_size=self.config.batch_size)

    @staticmethod
    def _take(free: list[int], n: int, order: np.ndarray, chosen: int, advance: Any) -> int:
        """Move up to ``n`` rows from ``free`` into the selection (recording their order); new selected count."""
        for _ in range(min(max(n, 0), len(free))):
            order[free.pop()] = chosen
            chosen += 1
            advance(1)
        return chosen

