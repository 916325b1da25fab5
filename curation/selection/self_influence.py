"""Flag or drop the training examples with the highest self-influence (likely label errors or outliers).

Self-influence is large where an example's gradient stays large across training: the model keeps fighting its
label. A selector turns that ranking into a decision, ``example_id, keep, reason``: the top ``fraction`` of
examples get ``reason = "high_self_influence"`` and, with ``action = drop``, ``keep = false``; every other example
is kept with ``reason = "kept"``. Ties are broken by table order so the decision is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import polars as pl

from curation.errors import DataContractError

REASON = "high_self_influence"
KEPT = "kept"


@dataclass(frozen=True, kw_only=True)
class SelfInfluenceSelectorConfig:
    """How many of the highest self-influence examples to act on, and how."""

    fraction: float = field(default=0.1, metadata={"help": "top fraction of examples by self-influence to act on"})
    action: Literal["flag", "drop"] = field(default="drop", metadata={"help": "flag (keep, annotate) or drop"})

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must lie in [0, 1], got {self.fraction}")


class SelfInfluenceSelector:
    """Registered as ``self_influence`` in ``curation.selectors``."""

    name: ClassVar[str] = "self_influence"
    config_cls: ClassVar[type] = SelfInfluenceSelectorConfig

    def __init__(self, config: SelfInfluenceSelectorConfig | None = None) -> None:
        self.config = config or SelfInfluenceSelectorConfig()

    def select(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``scores`` (``example_id, score``) -> ``example_id, keep, reason, score, rank`` in input order."""
        for column in ("example_id", "score"):
            if column not in scores.columns:
                raise DataContractError(f"self-influence scores: missing column '{column}'")
        if scores["score"].null_count() or not scores["score"].is_finite().all():
            row = scores.with_row_index().filter(~pl.col("score").is_finite() | pl.col("score").is_null())["index"][0]
            raise DataContractError(f"self-influence scores: row {row}: score is null or not finite")
        n_act = math.ceil(self.config.fraction * scores.height - 1e-9)
        ranked = (
            scores.select("example_id", "score")
            .with_row_index("_row")
            .with_columns(pl.struct(pl.col("score").neg(), "_row").rank("ordinal").cast(pl.Int64).alias("rank"))
        )
        flagged = pl.col("rank") <= n_act
        return ranked.with_columns(
            keep=~flagged if self.config.action == "drop" else pl.lit(True),
            reason=pl.when(flagged).then(pl.lit(REASON)).otherwise(pl.lit(KEPT)),
        ).sort("_row").select("example_id", "keep", "reason", "score", "rank")
