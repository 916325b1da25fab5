"""Table rows -> the float matrix a tree model reads, and the encoding that must travel with the model.

Numeric columns pass through (null -> NaN, which LightGBM routes as missing). String and categorical columns
become ordinal codes of their sorted training levels; a level never seen in training becomes NaN. The encoding
is stored beside the model (JSON), so scoring a new table encodes it exactly as the training table was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curation.errors import DataContractError

RESERVED = ("example_id",)


@dataclass(frozen=True)
class TableEncoding:
    """Feature columns in model order, levels of the string ones, and the label column."""

    features: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    label: str

    @classmethod
    def fit(cls, frame: pl.DataFrame, *, label: str, features: tuple[str, ...] = (),
            exclude: tuple[str, ...] = ()) -> TableEncoding:
        """Encoding of ``frame``: the named ``features``, or every column but the id, label and ``exclude``."""
        if label not in frame.columns:
            raise DataContractError(f"training table: missing label column '{label}'")
        missing = [c for c in (*features, *exclude) if c not in frame.columns]
        if missing:
            raise DataContractError(f"training table: missing column '{missing[0]}'")
        columns = features or tuple(c for c in frame.columns if c not in (*RESERVED, label, *exclude))
        if not columns:
            raise DataContractError("training table: no feature columns left")
        categories = {}
        for column in columns:
            dtype = frame.schema[column]
            if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
                levels = frame[column].cast(pl.String).drop_nulls().unique().sort().to_list()
                categories[column] = tuple(levels)
            elif not dtype.is_numeric() and dtype != pl.Boolean:
                raise DataContractError(f"training table, column '{column}': type {dtype} is neither numeric "
                                        f"nor string")
        return cls(tuple(columns), categories, label)

    def matrix(self, frame: pl.DataFrame, *, where: str) -> np.ndarray:
        """``[rows, features]`` float64 matrix of ``frame``; a missing column is a one-line error."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise DataContractError(f"{where}: missing feature column '{missing[0]}'")
        out = np.empty((frame.height, len(self.features)))
        for j, column in enumerate(self.features):
            series = frame[column]
            if column in self.categories:
                codes = {level: float(i) for i, level in enumerate(self.categories[column])}
                out[:, j] = [codes.get(v, np.nan) if v is not None else np.nan
                             for v in series.cast(pl.String).to_list()]
            else:
                try:
                    out[:, j] = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
                except pl.exceptions.InvalidOperationError:
                    raise DataContractError(f"{where}, column '{column}': expected numbers, got {series.dtype}") \
                        from None
        return out

    def labels(self, frame: pl.DataFrame, *, where: str) -> np.ndarray:
        """The label column as float64; missing column or null/non-finite labels are one-line errors."""
        if self.label not in frame.columns:
            raise DataContractError(f"{where}: missing label column '{self.label}'")
        series = frame[self.label]
        if not series.dtype.is_numeric() and series.dtype != pl.Boolean:
            raise DataContractError(f"{where}, column '{self.label}': labels must be numbers, got {series.dtype}")
        values = series.cast(pl.Float64).to_numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataContractError(f"{where}, row {int(bad[0])}, column '{self.label}': missing or non-finite label")
        return values

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "categories": {k: list(v) for k, v in self.categories.items()},
                "label": self.label}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TableEncoding:
        return cls(tuple(raw["features"]), {k: tuple(v) for k, v in raw["categories"].items()}, str(raw["label"]))
