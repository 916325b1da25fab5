"""TRAK (Park et al. 2023): attribution from projected output gradients of an ensemble of models.

For each model ``m`` (independently trained models, or the checkpoints of one run as a cheaper substitute):
``Phi_m`` = projected gradients of the model output ``f`` for every training example, ``phi_m(q)`` the same for a
query, ``K_m = (Phi_m^T Phi_m + lambda I)^-1``. Scores are ``tau(q) = mean_m [Phi_m K_m phi_m(q)] * mean_m Q_m``
(the reference code averages the score matrices and the out-to-loss weights separately, then multiplies).

Output ``f``: for classifiers (adapters with ``logits``) the margin ``log p_y / (1 - p_y)`` with
``Q = 1 - p_y = sigmoid(-margin)``; otherwise (language models) ``f = -loss`` with ``Q = 1``, where the two minus
signs cancel so loss gradients are used directly. Positive = helpful (raises the query's margin / lowers its
loss). Self-influence is the ensemble-averaged leverage ``phi(z)^T K phi(z)`` times ``Q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from curation.attribution.base import ScoreResult, ScoringContext
from curation.gradients.featurize import FeaturizeConfig, checkpoint_features, store_folder
from curation.gradients.projection import ProjectionConfig


@dataclass(frozen=True, kw_only=True)
class TRAKConfig:
    """TRAK settings."""

    output: Literal["auto", "margin", "loss"] = field(
        default="auto", metadata={"help": "auto = margin for classifiers with labels, else loss"}
    )
    projection: ProjectionConfig = field(
        default_factory=lambda: ProjectionConfig(kind="gaussian", dim=512),
        metadata={"help": "gradient sketch (same seed for train and queries)"},
    )
    damping: float = field(
        default=1e-6, metadata={"help": "ridge on Phi^T Phi, relative to its mean diagonal"}
    )
    shard_size: int = field(default=256, metadata={"help": "rows per gradient shard"})
    store: str = field(default="", metadata={"help": "folder for resumable gradient features; empty = temporary"})
    query_store: str = field(default="", metadata={"help": "folder for query features; empty = same as store"})

    def __post_init__(self) -> None:
        if self.damping < 0:
            raise ValueError("damping must be >= 0")


def trak_features(phi: np.ndarray, damping: float) -> np.ndarray:
    """``X = Phi (Phi^T Phi + lambda I)^-1`` with ``lambda = damping * trace(Phi^T Phi) / k`` (float64).

    With fewer rows than columns the same matrix is ``(Phi Phi^T + lambda I)^-1 Phi`` (push-through identity,
    also for lambda = 0 with pseudo-inverses), which costs an ``n x n`` instead of a ``k x k`` inverse.
    """
    phi = np.asarray(phi, dtype=np.float64)
    n, k = phi.shape
    lam = damping * float(np.einsum("ij,ij->", phi, phi)) / k
    if n < k:
        return np.linalg.pinv(phi @ phi.T + lam * np.eye(n), hermitian=True) @ phi
    return phi @ np.linalg.pinv(phi.T @ phi + lam * np.eye(k), hermitian=True)


def trak_scores(
    train: Sequence[np.ndarray], queries: Sequence[np.ndarray], q_weights: Sequence[np.ndarray], *, damping: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_train, n_query], self_influence [n_train])`` from per-model features and ``Q`` vectors."""
    matrix = np.zeros((train[0].shape[0], queries[0].shape[0]))
    leverage = np.zeros(train[0].shape[0])
    for phi, phi_q in zip(train, queries, strict=True):
        phi = np.asarray(phi, dtype=np.float64)
        x = trak_features(phi, damping)  # X_m = Phi K
        matrix += x @ np.asarray(phi_q, dtype=np.float64).T
        leverage += np.einsum("ij,ij->i", x, phi)
    q = _mean_q(q_weights)
    return matrix / len(train) * q[:, None], leverage / len(train) * q


def trak_self_influence(train: Sequence[np.ndarray], q_weights: Sequence[np.ndarray], *, damping: float) -> np.ndarray:
    """``[n_train]`` ensemble-mean leverage ``phi(z)^T K phi(z)`` times the mean ``Q``."""
    leverage = np.zeros(train[0].shape[0])
    for phi in train:
        phi = np.asarray(phi, dtype=np.float64)
        leverage += np.einsum("ij,ij->i", trak_features(phi, damping), phi)
    return leverage / len(train) * _mean_q(q_weights)


def _mean_q(q_weights: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean([np.asarray(w, dtype=np.float64) for w in q_weights], axis=0)


class TRAKScorer:
    """Registered as ``trak`` in ``curation.scorers``; checkpoints of the context form the ensemble."""

    name: ClassVar[str] = "trak"
    config_cls: ClassVar[type] = TRAKConfig

    def __init__(self, config: TRAKConfig | None = None) -> None:
        self.config = config or TRAKConfig()

    def output(self, ctx: ScoringContext) -> str:
        """The resolved model output: ``margin`` or ``loss``."""
        if self.config.output != "auto":
            return self.config.output
        return "margin" if ctx.adapter.kind == "classifier" and "label" in ctx.train.columns else "loss"

    def _features(self, ctx: ScoringContext, frame, split: str, target: str) -> list[tuple[np.ndarray, np.ndarray]]:
        cfg = FeaturizeConfig(target=target, modules=ctx.modules or (), projection=self.config.projection,
                              shard_size=self.config.shard_size, batch_size=ctx.batch_size)
        root = (self.config.query_store or self.config.store) if split == "query" else self.config.store
        store = store_folder(root, split, target, frame) if root else None
        return checkpoint_features(ctx.adapter, [c.model for c in ctx.checkpoints], frame, cfg, store_dir=store,
                                   executor=ctx.executor)

    def _train(self, ctx: ScoringContext) -> tuple[list[np.ndarray], list[np.ndarray]]:
        output = self.output(ctx)
        feats = self._features(ctx, ctx.train, "train", output)
        if output == "margin":
            return [g for g, _ in feats], [1.0 / (1.0 + np.exp(np.asarray(v, np.float64))) for _, v in feats]
        return [g for g, _ in feats], [np.ones(len(v)) for _, v in feats]

    def score(self, context: ScoringContext) -> ScoreResult:
        output = self.output(context)
        train, q = self._train(context)
        query_target = "margin" if output == "margin" else "measurement"
        queries = [g for g, _ in self._features(context, context.queries, "query", query_target)]
        matrix, self_inf = trak_scores(train, queries, q, damping=self.config.damping)
        return ScoreResult(
            matrix=matrix, self_influence=self_inf,
            train_ids=context.train["example_id"].to_list(), query_ids=context.queries["example_id"].to_list(),
            extras={"output": output, "models": len(train)},
        )

    def self_influence(self, context: ScoringContext) -> np.ndarray:
        """Self-influence only (no query features are computed)."""
        train, q = self._train(context)
        return trak_self_influence(train, q, damping=self.config.damping)
