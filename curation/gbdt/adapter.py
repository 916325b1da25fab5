"""The LightGBM tree-model adapter (entry point ``lightgbm`` in ``curation.model_adapters``, kind ``tree``).

It fits a booster on a table (``TableEncoding`` turns columns into features), saves and loads it in LightGBM's
text model format beside a JSON sidecar (never pickle), and exposes the leaf information the tree influence
methods need as a ``TreeEnsemble``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from curation.config import to_dict
from curation.errors import CurationError, DataContractError
from curation.gbdt.encoding import TableEncoding
from curation.gbdt.ensemble import TreeEnsemble
from curation.gbdt.lightgbm_ensemble import ensemble_from_lightgbm
from curation.gbdt.losses import OBJECTIVES

MODEL_FILE = "model.txt"
SIDECAR_FILE = "tree_model.json"


@dataclass(frozen=True, kw_only=True)
class LightGBMConfig:
    """How to fit a LightGBM booster on a table (plain Newton boosting, which tree influence needs)."""

    label: str = field(default="label", metadata={"help": "label column (0/1 for binary, numbers for regression)"})
    features: tuple[str, ...] = field(default=(), metadata={"help": "feature columns; empty = all but id/label/exclude"})
    exclude: tuple[str, ...] = field(default=(), metadata={"help": "columns never used as features"})
    objective: str = field(default="binary", metadata={"help": "binary or regression"})
    n_estimators: int = field(default=100, metadata={"help": "boosting rounds (trees)"})
    learning_rate: float = field(default=0.1, metadata={"help": "shrinkage"})
    num_leaves: int = field(default=31, metadata={"help": "maximum leaves per tree"})
    min_data_in_leaf: int = field(default=20, metadata={"help": "minimum training rows per leaf"})
    lambda_l2: float = field(default=0.0, metadata={"help": "L2 regulariser of leaf values"})
    seed: int = field(default=0, metadata={"help": "LightGBM seed"})
    num_threads: int = field(default=1, metadata={"help": "LightGBM threads (0 = all cores)"})

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.n_estimators < 1 or self.num_leaves < 2 or self.min_data_in_leaf < 1:
            raise ValueError("n_estimators >= 1, num_leaves >= 2 and min_data_in_leaf >= 1 are required")
        if self.learning_rate <= 0 or self.lambda_l2 < 0:
            raise ValueError("learning_rate must be > 0 and lambda_l2 >= 0")


@dataclass(frozen=True)
class TreeModel:
    """A fitted booster with the table encoding it was trained with."""

    booster: Any
    encoding: TableEncoding


class LightGBMAdapter:
    """LightGBM gradient-boosted trees over table rows (binary log-loss or squared error)."""

    name: ClassVar[str] = "lightgbm"
    kind: ClassVar[str] = "tree"
    config_cls: ClassVar[type] = LightGBMConfig

    def __init__(self, config: LightGBMConfig | None = None) -> None:
        self.config = config or LightGBMConfig()

    def params(self) -> dict[str, Any]:
        """LightGBM parameters of this config (deterministic, no bagging)."""
        c = self.config
        return {"objective": c.objective, "learning_rate": c.learning_rate, "num_leaves": c.num_leaves,
                "min_data_in_leaf": c.min_data_in_leaf, "lambda_l2": c.lambda_l2, "seed": c.seed,
                "num_threads": c.num_threads, "deterministic": True, "force_row_wise": True, "verbose": -1}

    def fit(self, frame: pl.DataFrame) -> TreeModel:
        """Fit a booster on every row of ``frame``."""
        import lightgbm

        c = self.config
        encoding = TableEncoding.fit(frame, label=c.label, features=c.features, exclude=c.exclude)
        x, y = encoding.matrix(frame, where="training table"), encoding.labels(frame, where="training table")
        if c.objective == "binary":
            bad = np.flatnonzero((y != 0) & (y != 1))
            if bad.size:
                raise DataContractError(f"training table, row {int(bad[0])}, column '{c.label}': binary labels "
                                        f"must be 0 or 1, got {y[bad[0]]:g}")
        dataset = lightgbm.Dataset(x, y, feature_name=[f"f{i}" for i in range(x.shape[1])], free_raw_data=False,
                                   params={"verbose": -1})
        booster = lightgbm.train(self.params(), dataset, num_boost_round=c.n_estimators)
        return TreeModel(booster, encoding)

    def features(self, model: TreeModel, frame: pl.DataFrame, *, where: str = "table") -> np.ndarray:
        """Feature matrix of ``frame`` in the model's encoding."""
        return model.encoding.matrix(frame, where=where)

    def labels(self, model: TreeModel, frame: pl.DataFrame, *, where: str = "table") -> np.ndarray:
        """Labels of ``frame`` as float64."""
        return model.encoding.labels(frame, where=where)

    def ensemble(self, model: TreeModel, train: pl.DataFrame) -> TreeEnsemble:
        """Leaf information of the booster; ``train`` (its training rows) sets the base score."""
        return ensemble_from_lightgbm(model.booster, self.labels(model, train, where="training table"))

    def predict_raw(self, model: TreeModel, frame: pl.DataFrame) -> np.ndarray:
        """Raw scores (log-odds for binary)."""
        return np.asarray(model.booster.predict(self.features(model, frame), raw_score=True))

    def save(self, model: TreeModel, folder: str | Path) -> Path:
        """Write ``model.txt`` (LightGBM text format) and ``tree_model.json`` (adapter, config, encoding)."""
        from curation.io import write_json
        from curation.io.atomic import atomic_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MODEL_FILE) as tmp:
            model.booster.save_model(str(tmp))
        write_json(self.sidecar(model), folder / SIDECAR_FILE)
        return folder

    def sidecar(self, model: TreeModel) -> dict[str, Any]:
        """What must travel with the booster to score tables with it (also stored as MLflow model metadata)."""
        return {"adapter": self.name, "config": to_dict(self.config), "encoding": model.encoding.to_dict()}

    def load(self, folder: str | Path) -> TreeModel:
        """Read a folder written by ``save``."""
        return load_booster(Path(folder) / MODEL_FILE, read_sidecar(folder)["encoding"])


def read_sidecar(folder: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a saved tree model; absent or malformed is a one-line error naming the file."""
    path = Path(folder) / SIDECAR_FILE
    if not path.is_file():
        raise CurationError(f"{folder}: not a tree model folder (no {SIDECAR_FILE}; fit one with `curate train`)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {"adapter": str(raw["adapter"]), "config": dict(raw["config"]), "encoding": dict(raw["encoding"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise CurationError(f"{path}: malformed tree model sidecar ({type(exc).__name__}: {exc})") from None


def load_booster(model_file: str | Path, encoding: dict[str, Any]) -> TreeModel:
    """A ``TreeModel`` from a LightGBM text model file and its encoding."""
    import lightgbm

    if not Path(model_file).is_file():
        raise CurationError(f"{model_file}: LightGBM model file not found")
    try:
        booster = lightgbm.Booster(model_file=str(model_file))
    except lightgbm.basic.LightGBMError as exc:
        raise CurationError(f"{model_file}: not a LightGBM text model ({str(exc).splitlines()[0]})") from None
    return TreeModel(booster, TableEncoding.from_dict(encoding))
