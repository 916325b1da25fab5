"""Tabular classifiers: a multinomial logistic regression and an MLP, with their adapters.

Rows carry a ``features`` list column (or the numeric columns named in the config) and an integer ``label``.
Per-example loss is cross-entropy; logistic regression can add an L2 term (``weight_decay``) so its optimum is
unique, which leave-one-out checks of influence functions rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from curation.errors import DataContractError
from curation.models.base import Batch


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Shape of a tabular classifier."""

    n_features: int = field(default=64, metadata={"help": "input width"})
    n_classes: int = field(default=10, metadata={"help": "number of classes (labels are 0..n_classes-1)"})
    hidden: tuple[int, ...] = field(default=(128,), metadata={"help": "hidden layer widths (MLP only)"})
    feature_columns: tuple[str, ...] = field(
        default=(), metadata={"help": "numeric columns to use; empty = the 'features' list column"}
    )
    dtype: str = field(default="float32", metadata={"help": "float32 or float64 (ground-truth checks use float64)"})

    def __post_init__(self) -> None:
        if self.n_features < 1 or self.n_classes < 2:
            raise ValueError("n_features must be >= 1 and n_classes >= 2")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")


def features_matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Rows as a float matrix from the ``features`` list column or the named numeric columns."""
    if columns:
        return frame.select(columns).to_numpy().astype(np.float64)
    if "features" not in frame.columns:
        raise DataContractError("table has no 'features' column and no feature_columns were configured")
    series = frame["features"]
    if isinstance(series.dtype, pl.List):
        widths = series.list.len()
        if widths.n_unique() > 1:
            row = int((widths != widths[0]).arg_max())
            raise DataContractError(
                f"column 'features', row {row}: {widths[row]} values where row 0 has {widths[0]} (rows must be equally long)"
            )
        series = series.list.to_array(int(widths[0]))
    return np.array(series.to_numpy(), dtype=np.float64)  # writable: torch.as_tensor warns on read-only arrays


class _TabularAdapter:
    kind: ClassVar[str] = "classifier"
    config_cls: ClassVar[type] = ClassifierConfig

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self.config = config or ClassifierConfig()

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.config.dtype == "float64" else torch.float32

    def collate(self, frame: pl.DataFrame) -> Batch:
        x = torch.as_tensor(features_matrix(frame, self.config.feature_columns), dtype=self.torch_dtype)
        batch = {"x": x}
        if "label" in frame.columns:
            batch["y"] = torch.tensor(frame["label"].to_numpy(), dtype=torch.long)
        return batch

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Class logits ``[batch, n_classes]``."""
        return model(batch["x"])

    def example_losses(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(batch["x"]), batch["y"], reduction="none")

    def measurement(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.example_losses(model, batch)

    def tracked_modules(self, model: nn.Module) -> list[str]:
        return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


class LogisticRegressionAdapter(_TabularAdapter):
    """Multinomial logistic regression (one Linear layer)."""

    name: ClassVar[str] = "logistic"

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.config.n_features, self.config.n_classes)).to(self.torch_dtype)


class MLPClassifierAdapter(_TabularAdapter):
    """Fully connected ReLU network."""

    name: ClassVar[str] = "mlp"

    def build_model(self) -> nn.Module:
        layers: list[nn.Module] = []
        width = self.config.n_features
        for h in self.config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, self.config.n_classes))
        return nn.Sequential(*layers).to(self.torch_dtype)
