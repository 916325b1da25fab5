"""Fit any registered adapter's model on a user's table: the one path behind ``curate train`` and cross-fitting.

A user who brings only a table gets checkpoints in this project's format (safetensors with the adapter, model
config and learning rate in force, plus training positions), so every influence and label-error method works on
them. Shape options a table already determines (a classifier's ``n_features`` and ``n_classes``) are read off the
table unless given, and must agree with it when given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curation.config import load
from curation.errors import DataContractError
from curation.models.base import ModelAdapter
from curation.plugins import get_plugin
from curation.training.loop import TrainConfig, TrainResult, train
from curation.training.outputs import train_into


def table_shape_options(adapter_cls: type, frame: pl.DataFrame, options: dict[str, Any], *, source: str) -> dict[str, Any]:
    """``options`` completed with the ``n_features`` / ``n_classes`` that ``frame`` implies, for adapters whose
    config has those fields; a given value that contradicts the table is an error naming the field."""
    fields = {f.name for f in dataclasses.fields(adapter_cls.config_cls)}
    out = dict(options)
    if "n_features" in fields:
        from curation.models.classifiers import features_matrix

        columns = tuple(out.get("feature_columns") or ())
        width = features_matrix(frame.head(1), columns).shape[1] if frame.height else 0
        if out.setdefault("n_features", width) != width:
            raise DataContractError(f"{source}: rows have {width} features, but n_features = {out['n_features']}")
    if "n_classes" in fields and "label" in frame.columns:
        top = int(frame["label"].max()) + 1
        out.setdefault("n_classes", max(2, top))
        if top > int(out["n_classes"]):
            row = int(np.argmax(frame["label"].to_numpy() >= int(out["n_classes"])))
            raise DataContractError(f"{source}: row {row}: label {frame['label'][row]} is outside 0..{out['n_classes'] - 1}"
                                    f" (n_classes = {out['n_classes']})")
    return out


def build_adapter(name: str, options: dict[str, Any], frame: pl.DataFrame, *, source: str) -> ModelAdapter:
    """The registered adapter ``name`` with ``options`` loaded strictly, completed from the table's shape."""
    adapter_cls = get_plugin("curation.model_adapters", name)
    completed = table_shape_options(adapter_cls, frame, options, source=source)
    return adapter_cls(load(adapter_cls.config_cls, completed, where=f"{name} model options"))


def fit_to_folder(
    adapter: ModelAdapter,
    train_frame: pl.DataFrame,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    source_digest: str,
    config_hash: str = "",
    val_frame: pl.DataFrame | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train and publish ``out_dir`` atomically (checkpoints with learning rates, manifest, positions)."""
    return train_into(
        out_dir,
        lambda tmp: train(adapter, train_frame, cfg, checkpoint_dir=tmp, val_frame=val_frame,
                          show_progress=show_progress),
        source_digest=source_digest,
        config_hash=config_hash,
    )
