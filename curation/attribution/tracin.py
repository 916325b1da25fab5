"""TracInCP (Pruthi et al. 2020) with the ReTrac gradient-norm renormalisation (Xie et al. 2024).

``score(z, q) = sum_k lr_k * <g(z; theta_k), g_f(q; theta_k)>`` over saved checkpoints, where ``g`` is the gradient
of the training loss and ``g_f`` that of the query measurement (both projected to the same ``k`` dimensions when a
projection is configured). Positive = helpful: a gradient step on ``z`` lowers the query's loss.

Renormalisation (``normalize``): examples with large gradient norms (mislabelled, atypical, short texts) otherwise
top every query's list. ``train`` unit-normalises each (example, checkpoint) training gradient before the
checkpoints are combined, ``both`` also the query gradients (ReTrac); the default ``both`` is for retrieval.
Self-influence ``sum_k lr_k * ||g(z; theta_k)||^2`` is never renormalised: the norm *is* the label-noise signal
(a unit-normalised self-influence would be the constant ``sum_k lr_k``).

Counterfactual prediction is not TracIn's strength: on the digits LDS benchmark, ``normalize="none"`` gives the
same scores and LDS (0.41) as dattri's and captum's TracIn on the same checkpoints, and no checkpoint choice,
weighting, projection or renormalisation lifts it above 0.45 (``benchmarks/influence/tracin_vs_peer_lds.py``,
docs/benchmarks.md). For LDS-type use, take every epoch checkpoint with ``normalize="none"``, or use TRAK or EK-FAC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from curation.attribution.base import ScoreResult, ScoringContext
from curation.gradients.featurize import FeaturizeConfig, checkpoint_features, store_folder
from curation.gradients.ghost import ghost_applicable, ghost_squared_norms
from curation.gradients.projection import ProjectionConfig
from curation.progress import progress_bar

Normalize = Literal["none", "train", "both"]


@dataclass(frozen=True, kw_only=True)
class TracInConfig:
    """TracIn settings."""

    normalize: Normalize = field(
        default="both", metadata={"help": "none | train | both: ReTrac unit-normalisation for retrieval scores"}
    )
    projection: ProjectionConfig = field(
        default_factory=lambda: ProjectionConfig(kind="identity"),
        metadata={"help": "gradient sketch (identity = exact dot products)"},
    )
    shard_size: int = field(default=256, metadata={"help": "rows per gradient shard"})
    store: str = field(default="", metadata={"help": "folder for resumable gradient features; empty = temporary"})
    query_store: str = field(default="", metadata={"help": "folder for query features; empty = same as store"})


def unit_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def tracin_matrix(
    train: Sequence[np.ndarray], queries: Sequence[np.ndarray], learning_rates: Sequence[float], *,
    normalize: Normalize = "none",
) -> np.ndarray:
    """``[n_train, n_query]`` = ``sum_k lr_k * G_k Q_k^T`` with optional unit-normalisation of the rows."""
    if not (len(train) == len(queries) == len(learning_rates)):
        raise ValueError("need one train and one query feature matrix per learning rate")
    out = np.zeros((train[0].shape[0], queries[0].shape[0]))
    for g, q, lr in zip(train, queries, learning_rates, strict=True):
        g = unit_rows(g) if normalize in ("train", "both") else np.asarray(g, dtype=np.float64)
        q = unit_rows(q) if normalize == "both" else np.asarray(q, dtype=np.float64)
        out += lr * (g @ q.T)
    return out


def tracin_self(train: Sequence[np.ndarray], learning_rates: Sequence[float]) -> np.ndarray:
    """``[n_train]`` = ``sum_k lr_k * ||g_k||^2`` (raw norms: the label-noise signal)."""
    return sum(lr * np.einsum("ij,ij->i", np.asarray(g, np.float64), np.asarray(g, np.float64))
               for g, lr in zip(train, learning_rates, strict=True))


class TracInScorer:
    """Registered as ``tracin`` in ``curation.scorers``."""

    name: ClassVar[str] = "tracin"
    config_cls: ClassVar[type] = TracInConfig

    def __init__(self, config: TracInConfig | None = None) -> None:
        self.config = config or TracInConfig()

    def _features(self, ctx: ScoringContext, target: str, split: str, frame) -> list[np.ndarray]:
        cfg = FeaturizeConfig(target=target, modules=ctx.modules or (), projection=self.config.projection,
                              shard_size=self.config.shard_size, batch_size=ctx.batch_size)
        root = (self.config.query_store or self.config.store) if split == "query" else self.config.store
        store = store_folder(root, split, target, frame) if root else None
        models = [c.model for c in ctx.checkpoints]
        return [g for g, _ in checkpoint_features(ctx.adapter, models, frame, cfg, store_dir=store,
                                                  executor=ctx.executor)]

    def gradient_features(self, context: ScoringContext) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-checkpoint training-loss and query-measurement gradient features (read back when stored)."""
        return (self._features(context, "loss", "train", context.train),
                self._features(context, "measurement", "query", context.queries))

    def score(self, context: ScoringContext) -> ScoreResult:
        lrs = [c.learning_rate for c in context.checkpoints]
        train, queries = self.gradient_features(context)
        return ScoreResult(
            matrix=tracin_matrix(train, queries, lrs, normalize=self.config.normalize),
            self_influence=tracin_self(train, lrs),
            train_ids=context.train["example_id"].to_list(),
            query_ids=context.queries["example_id"].to_list(),
            extras={"learning_rates": lrs, "normalize": self.config.normalize},
        )

    def prepare(self, context: ScoringContext, *, queries: bool = True) -> None:
        """Compute the gradient features into ``config.store`` so a later ``score`` only reads them."""
        if not self.config.store:
            raise ValueError("prepare needs config.store (a folder for the gradient store)")
        self._features(context, "loss", "train", context.train)
        if queries:
            self._features(context, "measurement", "query", context.queries)

    def self_influence(self, context: ScoringContext) -> np.ndarray:
        """Self-influence only (no query gradients are computed).

        Without a projection and with only ``nn.Linear`` modules tracked, exact squared gradient norms come from
        one forward/backward pass per batch (``curation.gradients.ghost``) instead of materialised gradients.
        """
        lrs = [c.learning_rate for c in context.checkpoints]
        if self.config.projection.kind == "identity" and all(
            ghost_applicable(c.model, context.tracked(c.model)) for c in context.checkpoints
        ):
            return ghost_self_influence(context, lrs)
        train = self._features(context, "loss", "train", context.train)
        return tracin_self(train, lrs)


def ghost_self_influence(context: ScoringContext, learning_rates: Sequence[float]) -> np.ndarray:
    """``sum_k lr_k * ||g(z; theta_k)||^2`` from ghost norms, batch by batch."""
    n, size = context.train.height, context.batch_size
    total = np.zeros(n)
    with progress_bar(total=len(context.checkpoints) * -(-n // size), description="tracin self-influence") as advance:
        for ckpt, lr in zip(context.checkpoints, learning_rates, strict=True):
            modules = context.tracked(ckpt.model)
            ckpt.model.eval()
            for start in range(0, n, size):
                batch = context.adapter.collate(context.train[start : start + size])
                norms = ghost_squared_norms(ckpt.model, batch, context.adapter.example_losses, modules)
                total[start : start + size] += lr * norms.numpy()
                advance(1)
    return total
