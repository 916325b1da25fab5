"""LESS (Xia et al., ICML 2024; methods spec section 6): score pool examples by how well their Adam-preconditioned
LoRA update aligns with the plain gradients of a few target examples.

``s(z, v) = sum_k w_k cos(u_k(z), g_k(v))`` over warm-up checkpoints ``k`` (``w_k`` = the epoch's mean learning
rate, normalised), ``u_k`` the Adam update from checkpoint ``k``'s own moments, ``g_k`` the projected target
gradient. Cosine rather than dot product, because raw gradient norms are larger for short sequences, which would
otherwise be over-selected. A pool example's score is the max over tasks of its mean over the task's targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl
from torch import nn

from curation.models.base import ModelAdapter
from curation.selection.targeted.features import FeatureConfig, TargetedFeatures, compute_features
from curation.selection.targeted.scores import TargetedScores, weighted_cosine
from curation.selection.targeted.warmup import WarmupConfig, warmup_lora


@dataclass(frozen=True, kw_only=True)
class LESSConfig:
    """LoRA warm-up, gradient features and the target task column."""

    warmup: WarmupConfig = field(default_factory=WarmupConfig, metadata={"help": "LoRA warm-up on a random slice"})
    features: FeatureConfig = field(default_factory=FeatureConfig, metadata={"help": "projection and batching"})
    task_column: str = field(default="task", metadata={"help": "target-table column naming each target's task"})


def less_scores(features: TargetedFeatures) -> TargetedScores:
    """LESS's checkpoint-weighted cosine between Adam-preconditioned pool updates and plain target gradients."""
    return TargetedScores(weighted_cosine(features.train_adam, features.target, features.weights), features.tasks)


class LESSScorer:
    """Registered as ``less``: warm-up + LoRA gradient features + LESS scores for a pool and its target tasks."""

    name: ClassVar[str] = "less"
    config_cls: ClassVar[type] = LESSConfig

    def __init__(self, config: LESSConfig | None = None) -> None:
        self.config = config or LESSConfig()

    def features(self, adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame,
                 targets: pl.DataFrame, *, show_progress: bool = False) -> TargetedFeatures:
        """Warm ``model`` up with LoRA (in place) and compute the pool/target features at every checkpoint."""
        warmup = warmup_lora(adapter, model, pool, self.config.warmup, show_progress=show_progress)
        return compute_features(adapter, warmup, pool, targets, self.config.features,
                                task_column=self.config.task_column, show_progress=show_progress)

    def score(self, adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame,
              targets: pl.DataFrame, *, show_progress: bool = False) -> TargetedScores:
        """Train x target LESS scores (``.to_frame(pool['example_id'])`` feeds the Selector)."""
        return less_scores(self.features(adapter, model, pool, targets, show_progress=show_progress))
