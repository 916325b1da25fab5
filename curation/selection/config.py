"""Configs of the label-error stages: ``detect_label_errors`` (self-influence -> selector -> filtered data) and
``retrain_classifier`` (the same recipe on the filtered data). Each equals its ``params.yaml`` block."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.gbdt.config import TreeInfluenceConfig
from curation.selection.self_influence import SelfInfluenceSelectorConfig


@dataclass(frozen=True, kw_only=True)
class DetectLabelErrorsConfig:
    """Rank training examples by TracIn self-influence and drop (or flag) the top fraction."""

    gradients_stage: str = field(default="compute_gradients", metadata={"help": "params block of the stores"})
    selector: SelfInfluenceSelectorConfig = field(
        default_factory=SelfInfluenceSelectorConfig, metadata={"help": "how many to act on, flag or drop"}
    )
    known_errors: str = field(
        default="data/digits/noisy_ids.parquet",
        metadata={"help": "optional table of known flipped example_ids for the PR curve; empty = none"},
    )
    out_dir: str = field(default="data/digits_filtered", metadata={"help": "filtered.parquet + manifest.json"})
    report_dir: str = field(default="artifacts/detect_label_errors", metadata={"help": "scores, plots, report"})
    tree: TreeInfluenceConfig = field(default_factory=TreeInfluenceConfig,
                                      metadata={"help": "rank a boosted-tree model's self-influence instead (tree.model set)"})
    tag_model: str = field(
        default="auto",
        metadata={"help": "models:/ URI to tag with the label-error rate; auto = the version registered beside the "
                          "scored checkpoints; empty = none"},
    )


@dataclass(frozen=True, kw_only=True)
class RetrainClassifierConfig:
    """Retrain the classifier with its original recipe on the filtered data; compare test accuracy."""

    recipe_stage: str = field(default="train_classifier", metadata={"help": "params block with the recipe"})
    train_data: str = field(default="data/digits_filtered/filtered.parquet", metadata={"help": "filtered table"})
    baseline: str = field(default="checkpoints/classifier", metadata={"help": "the model trained on all rows"})
    out_dir: str = field(default="checkpoints/classifier_filtered", metadata={"help": "new checkpoints"})
