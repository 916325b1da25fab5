"""Config dataclasses of the unlearning stages; each equals the ``params.yaml`` block of the same name."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.unlearning.operators import UnlearnConfig
from curation.unlearning.verify import UnlearningCheckConfig


@dataclass(frozen=True, kw_only=True)
class ForgetRequestConfig:
    """Demo deletion request: a seeded sample of training ids (a real project supplies its own request file)."""

    train_data: str = field(default="data/digits/train.parquet", metadata={"help": "training table"})
    size: int = field(default=100, metadata={"help": "number of examples to forget"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    out: str = field(default="data/forget/request.parquet", metadata={"help": "request table (example_id)"})


@dataclass(frozen=True, kw_only=True)
class UnlearnRetrainConfig:
    """Exact unlearning: retrain from scratch without the forget set, with the recipe of the original training."""

    train_data: str = field(default="data/digits/train.parquet", metadata={"help": "training table"})
    request: str = field(default="data/forget/request.parquet", metadata={"help": "forget request (example_id)"})
    recipe_stage: str = field(
        default="train_classifier", metadata={"help": "params block holding adapter, model and train of the original"}
    )
    seed: int | None = field(default=None, metadata={"help": "training seed; null = the recipe's seed"})
    out: str = field(default="checkpoints/unlearn_retrain/model.safetensors", metadata={"help": "retrained model"})
    calibration_seeds: tuple[int, ...] = field(
        default=(),
        metadata={"help": "seeds of further retrains without the forget set (calibration models of the calibrated "
                          "membership attack in verify_unlearning); each must differ from the reference's seed"},
    )
    calibration_dir: str = field(
        default="checkpoints/unlearn_retrain/calibration",
        metadata={"help": "folder of the calibration retrains, one seed-<seed>.safetensors each"},
    )
    register_as: str = field(default="", metadata={"help": "MLflow registered model name; empty = do not register"})


@dataclass(frozen=True, kw_only=True)
class UnlearnStageConfig:
    """Approximate unlearning of a trained model with an operator (gradient ascent / difference, IAU, fine-tuning on
    the retain rows)."""

    train_data: str = field(default="data/digits/train.parquet", metadata={"help": "training table"})
    request: str = field(default="data/forget/request.parquet", metadata={"help": "forget request (example_id)"})
    original: str = field(
        default="checkpoints/classifier", metadata={"help": "checkpoint file, training out folder or models:/ URI"}
    )
    unlearn: UnlearnConfig = field(default_factory=UnlearnConfig, metadata={"help": "operator settings"})
    out: str = field(default="checkpoints/unlearned/model.safetensors", metadata={"help": "unlearned model"})
    register_as: str = field(default="", metadata={"help": "MLflow registered model name; empty = do not register"})


@dataclass(frozen=True, kw_only=True)
class VerifyUnlearningConfig:
    """Verify that the unlearned model forgot the forget set (MIA, PrivLeak, forget quality, utility, REMIND)."""

    train_data: str = field(default="data/digits/train.parquet", metadata={"help": "training table"})
    request: str = field(default="data/forget/request.parquet", metadata={"help": "forget request (example_id)"})
    holdout_data: str = field(default="data/digits/test.parquet", metadata={"help": "never-trained rows (MIA)"})
    validation_data: str = field(default="", metadata={"help": "utility rows; empty = the holdout table"})
    original: str = field(default="checkpoints/classifier", metadata={"help": "model before unlearning"})
    unlearned: str = field(default="checkpoints/unlearned/model.safetensors", metadata={"help": "model to verify"})
    reference: str = field(
        default="checkpoints/unlearn_retrain/model.safetensors",
        metadata={"help": "model retrained without the forget set; empty = none (compare with chance)"},
    )
    calibration: tuple[str, ...] = field(
        default=(),
        metadata={"help": "further models retrained without the forget set (other seeds): with the reference they "
                          "calibrate the membership attack (score = log-likelihood minus theirs)"},
    )
    tag_model: str = field(
        default="auto",
        metadata={"help": "models:/ URI to tag with the verdict; auto = the version registered beside 'unlearned'"},
    )
    check: UnlearningCheckConfig = field(default_factory=UnlearningCheckConfig, metadata={"help": "thresholds"})
    out_dir: str = field(default="artifacts/verify_unlearning", metadata={"help": "verdict, evidence and report"})
