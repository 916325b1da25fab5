"""Config dataclasses of the built-in pipeline stages; each equals the ``params.yaml`` block of the same name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.data.corpus import CorpusConfig
from curation.data.digits import DigitsConfig
from curation.models.classifiers import ClassifierConfig
from curation.models.gpt import ByteGPTConfig
from curation.selection.selector import SelectorConfig
from curation.training.loop import TrainConfig


@dataclass(frozen=True, kw_only=True)
class PrepareDataConfig:
    """Build the demo data: a multi-domain text corpus and digits with injected label noise."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig, metadata={"help": "text corpus settings"})
    digits: DigitsConfig = field(default_factory=DigitsConfig, metadata={"help": "digits settings"})
    out_dir: str = field(default="data", metadata={"help": "folder for the prepared tables"})


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """One table to validate."""

    path: str = field(metadata={"help": "Parquet / JSONL / CSV file"})
    contract: str = field(default="text", metadata={"help": "contract name: text or features"})
    n_classes: int | None = field(default=None, metadata={"help": "labels must lie in 0..n_classes-1"})

    def __post_init__(self) -> None:
        from curation.validation.contracts import CONTRACTS

        if self.contract not in CONTRACTS:
            raise ValueError(f"contract {self.contract!r} is not one of {', '.join(CONTRACTS)}")
        if self.n_classes is not None and self.n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {self.n_classes}")


@dataclass(frozen=True, kw_only=True)
class ValidateDataConfig:
    """Check every input table against its data contract before any training or scoring."""

    tables: tuple[TableSpec, ...] = field(default=(), metadata={"help": "tables and their contracts"})
    report: str = field(default="artifacts/validate_data/validation.json", metadata={"help": "summary output"})

    def __post_init__(self) -> None:
        if not self.tables:
            raise ValueError("tables must list at least one table")


@dataclass(frozen=True, kw_only=True)
class TrainLMConfig:
    """Train the byte-level GPT, saving checkpoints and training positions."""

    train_data: str = field(default="data/corpus/train.parquet", metadata={"help": "training table (text)"})
    val_data: str = field(default="data/corpus/val.parquet", metadata={"help": "validation table (text)"})
    model: ByteGPTConfig = field(default_factory=ByteGPTConfig, metadata={"help": "architecture"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimisation"})
    out_dir: str = field(default="checkpoints/lm", metadata={"help": "checkpoints, manifest and positions"})
    register_as: str = field(default="", metadata={"help": "MLflow registered model name; empty = do not register"})


@dataclass(frozen=True, kw_only=True)
class TrainClassifierConfig:
    """Train a tabular classifier (mlp or logistic) on the features table."""

    train_data: str = field(default="data/digits/train.parquet", metadata={"help": "training table (features)"})
    test_data: str = field(default="data/digits/test.parquet", metadata={"help": "held-out table (features)"})
    adapter: str = field(default="mlp", metadata={"help": "model adapter: mlp or logistic"})
    model: ClassifierConfig = field(default_factory=ClassifierConfig, metadata={"help": "architecture"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimisation"})
    out_dir: str = field(default="checkpoints/classifier", metadata={"help": "checkpoints, manifest and positions"})
    register_as: str = field(default="", metadata={"help": "MLflow registered model name; empty = do not register"})


@dataclass(frozen=True, kw_only=True)
class BuildReportConfig:
    """Assemble the pipeline report: data summary, training curves, headline metrics, links to stage runs."""

    corpus: str = field(default="data/corpus/train.parquet", metadata={"help": "text table to summarise"})
    metrics_dir: str = field(default="metrics", metadata={"help": "folder of metrics/<stage>.json files"})
    curves: tuple[str, ...] = field(
        default=("plots/train_lm/curve.csv", "plots/train_classifier/curve.csv"),
        metadata={"help": "training-curve CSVs (step, train_loss, val_loss) to plot"},
    )
    out: str = field(default="reports/pipeline.html", metadata={"help": "HTML report path"})


@dataclass(frozen=True, kw_only=True)
class SelectDataConfig:
    """Select the pool rows most like a target (DSIR or another selection scorer) under a budget."""

    pool: str = field(default="data/corpus/train.parquet",
                      metadata={"help": "pool: a Parquet file or a folder of Parquet shards (example_id, text)"})
    target: str = field(default="data/corpus/val.parquet", metadata={"help": "target table with a text column"})
    target_filter: dict[str, str] = field(default_factory=dict,
                                          metadata={"help": "keep target rows whose columns equal these values, "
                                                            "e.g. {domain: legal}; empty = all rows"})
    scorer: str = field(default="dsir", metadata={"help": "registered selection scorer (curation.selection_scorers)"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the scorer's options"})
    selector: SelectorConfig = field(default_factory=SelectorConfig,
                                     metadata={"help": "budget, ranking (gumbel | topk), quotas, dedup, seed"})
    kl_reduction: bool = field(default=True, metadata={"help": "measure the KL reduction of the selection "
                                                                "(one more pass over the pool)"})
    out_dir: str = field(default="data/selected", metadata={"help": "filtered.parquet, selection.parquet, "
                                                                      "manifest.json, issue table + summary"})
    report_dir: str = field(default="artifacts/select_data", metadata={"help": "report and plots"})


def _topk() -> SelectorConfig:
    return SelectorConfig(method="topk")


@dataclass(frozen=True, kw_only=True)
class SelectTargetedConfig:
    """Select the pool rows that help a few target tasks, judged by a model (LESS, GIST, BIDS, TAROT, ...)."""

    checkpoints: str = field(default="checkpoints/lm", metadata={
        "help": "model reference: training output folder, checkpoint file, models:/ or runs:/ URI (final one used)"})
    pool: str = field(default="data/corpus/train.parquet",
                      metadata={"help": "pool: a Parquet file or a folder of Parquet shards (example_id, text)"})
    targets: str = field(default="data/corpus/val.parquet", metadata={"help": "target examples with a task column"})
    task_column: str = field(default="domain", metadata={"help": "target column naming each row's task"})
    targets_per_task: int = field(default=4, metadata={"help": "first N target rows of each task; 0 = all"})
    method: str = field(default="less", metadata={"help": "less | gist | mates | nn_cift | bids | tarot | dealrec | "
                                                          "ideal"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the method's options"})
    features_from: str = field(default="less", metadata={"help": "bids, tarot: less | gist, the gradient scorer"})
    feature_options: dict[str, Any] = field(default_factory=dict,
                                            metadata={"help": "options of the features_from scorer"})
    selector: SelectorConfig = field(default_factory=_topk,
                                     metadata={"help": "budget, ranking (topk | gumbel), quotas, dedup, seed"})
    out_dir: str = field(default="data/selected_targeted", metadata={
        "help": "filtered.parquet, selection.parquet, manifest.json, issue table + summary"})
    report_dir: str = field(default="artifacts/select_targeted", metadata={"help": "report and plots"})

    def __post_init__(self) -> None:
        if self.targets_per_task < 0:
            raise ValueError(f"targets_per_task must be >= 0, got {self.targets_per_task}")


@dataclass(frozen=True, kw_only=True)
class RefreshPredictorConfig:
    """Retrain a learned influence predictor (MATES or NN-CIFT) on fresh oracle labels from the latest checkpoint,
    rescore the pool and measure the predictor on held-out oracle labels (scheduled between training rounds)."""

    checkpoints: str = field(default="checkpoints/lm", metadata={"help": "model reference (latest checkpoint used)"})
    pool: str = field(default="data/corpus/train.parquet", metadata={"help": "pool (example_id, text)"})
    targets: str = field(default="data/corpus/val.parquet", metadata={
        "help": "reference examples the oracle measures (with a task column)"})
    task_column: str = field(default="domain", metadata={"help": "target column naming each row's task"})
    targets_per_task: int = field(default=4, metadata={"help": "first N target rows of each task; 0 = all"})
    method: str = field(default="mates", metadata={"help": "mates | nn_cift"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "predictor options (sample_fraction, "
                                                                           "epochs, probe_lr, ...)"})
    holdout: int = field(default=32, metadata={"help": "unlabelled pool rows labelled afterwards to measure the "
                                                       "predictor's held-out Spearman"})
    selector: SelectorConfig = field(default_factory=_topk, metadata={"help": "budget of the rescored selection"})
    out_dir: str = field(default="data/predictor_selection", metadata={
        "help": "the rescored selection: filtered.parquet, selection.parquet, manifest.json, issue table + summary"})
    report_dir: str = field(default="artifacts/refresh_predictor", metadata={"help": "report"})

    def __post_init__(self) -> None:
        if self.method not in ("mates", "nn_cift"):
            raise ValueError(f"method must be mates or nn_cift, got {self.method!r}")
        if self.holdout < 3 or self.targets_per_task < 0:
            raise ValueError("holdout must be >= 3 and targets_per_task >= 0")
