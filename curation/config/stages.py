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
