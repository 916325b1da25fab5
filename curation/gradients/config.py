"""Configs of the demo's gradient stages: ``compute_gradients`` (fill the stores) and ``score_influence``
(TracIn / ReTrac / TRAK retrieval for query examples). Each equals the ``params.yaml`` block of the same name."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.executors import ExecutorConfig
from curation.gbdt.config import TreeInfluenceConfig
from curation.gradients.projection import ProjectionConfig


@dataclass(frozen=True, kw_only=True)
class GradientJobConfig:
    """One model's training run and the tables whose gradients are stored."""

    checkpoints: str = field(metadata={"help": "training output folder (checkpoints.json), file or models:/ URI"})
    train_data: str = field(metadata={"help": "training table the model was trained on"})
    train_sample: int = field(default=0, metadata={"help": "score a seeded sample of this many rows; 0 = all"})
    query_data: str = field(default="", metadata={"help": "query table (validation examples); empty = none"})
    query_sample: int = field(default=0, metadata={"help": "seeded sample of query rows, stratified by domain; 0 = all"})
    modules: tuple[str, ...] = field(default=(), metadata={"help": "tracked modules; empty = adapter default"})
    projection: ProjectionConfig = field(default_factory=ProjectionConfig, metadata={"help": "gradient sketch"})
    batch_size: int = field(default=32, metadata={"help": "examples per vmap micro-batch"})
    shard_size: int = field(default=256, metadata={"help": "rows per resumable shard"})
    seed: int = field(default=0, metadata={"help": "seed of the row samples"})
    executor: ExecutorConfig = field(default_factory=ExecutorConfig,
                                     metadata={"help": "where gradient shards run: local or a Ray cluster"})

    def __post_init__(self) -> None:
        for name in ("batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("train_sample", "query_sample"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (all rows) or a positive row count, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class ComputeGradientsConfig:
    """Per-example gradient features of the demo models, stored resumably (``persist: true`` in dvc.yaml)."""

    store: str = field(default="artifacts/gradients", metadata={"help": "root folder of the gradient stores"})
    lm: GradientJobConfig = field(
        default_factory=lambda: GradientJobConfig(
            checkpoints="checkpoints/lm", train_data="data/corpus/train.parquet", train_sample=256,
            query_data="data/corpus/val.parquet", query_sample=8,
            modules=("blocks.2.fc", "blocks.2.fc_out", "head"), projection=ProjectionConfig(kind="sjlt", dim=1024),
        ),
        metadata={"help": "language model: train and query gradients for retrieval"},
    )
    classifier: GradientJobConfig = field(
        default_factory=lambda: GradientJobConfig(
            checkpoints="checkpoints/classifier", train_data="data/digits/train.parquet",
            projection=ProjectionConfig(kind="gaussian", dim=512), batch_size=128, shard_size=512,
        ),
        metadata={"help": "classifier: train gradients for self-influence (label errors)"},
    )


@dataclass(frozen=True, kw_only=True)
class ScoreInfluenceConfig:
    """Which training passages most helped each query, by TracIn (raw and ReTrac-renormalised) and TRAK."""

    gradients_stage: str = field(default="compute_gradients", metadata={"help": "params block of the stores"})
    queries: str = field(default="", metadata={"help": "user query file (text); empty = the sampled validation rows"})
    top_k: int = field(default=10, metadata={"help": "training examples listed per query"})
    normalize: str = field(default="both", metadata={"help": "TracIn renormalisation for retrieval: none|train|both"})
    trak_damping: float = field(default=1e-3, metadata={"help": "TRAK ridge, relative to the mean Gram diagonal"})
    out_dir: str = field(default="artifacts/score_influence", metadata={"help": "matrices, top-k tables, report"})
    tree: TreeInfluenceConfig = field(default_factory=TreeInfluenceConfig,
                                      metadata={"help": "score a boosted-tree model instead (tree.model set)"})

    def __post_init__(self) -> None:
        if self.normalize not in ("none", "train", "both"):
            raise ValueError(f"normalize must be none, train or both, got {self.normalize!r}")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")
