"""GIST (Min et al., 2026; methods spec section 7): score pool gradients inside the low-rank subspace spanned by the
target gradients instead of with LESS's diagonal Adam preconditioner.

Per checkpoint ``k``: stack the target gradients ``V [m, d]``, thin SVD ``V = U S W^T``, keep the top-``r`` right
singular vectors ``W_r`` (``rank``, or the smallest ``r`` whose squared singular values reach ``energy`` of the
total); store ``c(z) = W_r^T g(z)`` -- ``r`` numbers per example instead of LESS's ``d`` -- and score
``s(z, v) = cos(c(z), W_r^T v)``, summed over checkpoints with LESS's weights. The spec leaves the exact score
form open [O]: this is the per-target cosine in the subspace, reduced per task like LESS, so BIDS can consume it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import polars as pl
from torch import nn

from curation.models.base import ModelAdapter
from curation.selection.targeted.features import FeatureConfig, TargetedFeatures, compute_features
from curation.selection.targeted.scores import TargetedScores, weighted_cosine
from curation.selection.targeted.warmup import WarmupConfig, warmup_lora


@dataclass(frozen=True, kw_only=True)
class GISTConfig:
    """Subspace rank and which pool gradients are projected into it."""

    warmup: WarmupConfig = field(default_factory=WarmupConfig, metadata={"help": "LoRA warm-up on a random slice"})
    features: FeatureConfig = field(default_factory=FeatureConfig, metadata={"help": "projection and batching"})
    task_column: str = field(default="task", metadata={"help": "target-table column naming each target's task"})
    rank: int = field(default=0, metadata={"help": "subspace rank r; 0 = choose by energy"})
    energy: float = field(default=0.9, metadata={"help": "share of squared singular values kept when rank = 0"})
    pool_gradients: Literal["sgd", "adam"] = field(
        default="sgd", metadata={"help": "sgd (GIST: no diagonal preconditioner) | adam (LESS's update)"})

    def __post_init__(self) -> None:
        if self.rank < 0 or not 0 < self.energy <= 1:
            raise ValueError("rank must be >= 0 and energy in (0, 1]")


def target_subspace(targets: np.ndarray, *, rank: int = 0, energy: float = 0.9) -> np.ndarray:
    """``W_r [d, r]``: top right singular vectors of the ``[m, d]`` target gradients (spectral filtering)."""
    _, s, wt = np.linalg.svd(np.asarray(targets, dtype=np.float64), full_matrices=False)
    s = s[s > s[0] * 1e-10] if s.size and s[0] > 0 else s[:0]
    if s.size == 0:
        raise ValueError("target gradients are all zero; no subspace to project on")
    r = rank or int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), energy - 1e-12) + 1)
    return wt[: min(r, s.size)].T


@dataclass
class GISTCoordinates:
    """What GIST stores: ``pool[k] [n, r_k]`` and ``target[k] [m, r_k]`` subspace coordinates per checkpoint."""

    pool: list[np.ndarray]
    target: list[np.ndarray]
    weights: np.ndarray
    tasks: np.ndarray

    @property
    def numbers_per_example(self) -> int:
        return int(sum(c.shape[1] for c in self.pool))


def gist_coordinates(features: TargetedFeatures, cfg: GISTConfig) -> GISTCoordinates:
    """Project pool and target gradients of every checkpoint on that checkpoint's target subspace."""
    pool_feats = features.train_sgd if cfg.pool_gradients == "sgd" else features.train_adam
    pool, target = [], []
    for g, v in zip(pool_feats, features.target, strict=True):
        w = target_subspace(v, rank=cfg.rank, energy=cfg.energy)
        pool.append((g @ w).astype(np.float32))
        target.append((v @ w).astype(np.float32))
    return GISTCoordinates(pool, target, features.weights, features.tasks)


def gist_scores(coords: GISTCoordinates) -> TargetedScores:
    """Checkpoint-weighted cosine between pool and target coordinates in the target subspace."""
    return TargetedScores(weighted_cosine(coords.pool, coords.target, coords.weights), coords.tasks)


class GISTScorer:
    """Registered as ``gist``: LESS's warm-up and gradients, scored in the target-gradient SVD subspace."""

    name: ClassVar[str] = "gist"
    config_cls: ClassVar[type] = GISTConfig

    def __init__(self, config: GISTConfig | None = None) -> None:
        self.config = config or GISTConfig()

    def score(self, adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame,
              targets: pl.DataFrame, *, show_progress: bool = False) -> TargetedScores:
        """Train x target GIST scores (``.to_frame(pool['example_id'])`` feeds the Selector)."""
        warmup = warmup_lora(adapter, model, pool, self.config.warmup, show_progress=show_progress)
        feats = compute_features(adapter, warmup, pool, targets, self.config.features,
                                 task_column=self.config.task_column, show_progress=show_progress)
        return gist_scores(gist_coordinates(feats, self.config))
