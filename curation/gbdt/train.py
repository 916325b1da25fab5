"""Fit a tree model on a table and save it safely: LightGBM's text model format plus a JSON sidecar, optionally
logged with MLflow's LightGBM flavour and registered. This is what ``curate train`` calls for ``lightgbm``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation.config import load
from curation.errors import DataContractError
from curation.io import read_table


def train_tree_model(train_path: str, out_dir: str, *, adapter_name: str = "lightgbm",
                     options: dict[str, Any] | None = None, register_as: str | None = None) -> dict[str, Any]:
    """Fit the registered tree adapter ``adapter_name`` (config from ``options``) on the table at ``train_path``,
    save it under ``out_dir``; with ``register_as``, log it to MLflow and register a version.

    Returns ``{"out_dir", "rows", "trees", "train_loss", "version"}`` (``version`` None when not registered).
    """
    import numpy as np

    from curation.models.base import require_kind
    from curation.plugins import get_plugin

    adapter_cls = get_plugin("curation.model_adapters", adapter_name)
    adapter = require_kind(adapter_cls(load(adapter_cls.config_cls, options or {}, where=f"{adapter_name} options")),
                           "tree", what="train_tree_model")
    frame = read_table(train_path)
    if frame.height == 0:
        raise DataContractError(f"{train_path}: no rows (training table)")
    if "example_id" in frame.columns and frame["example_id"].n_unique() != frame.height:
        raise DataContractError(f"{train_path}: column 'example_id' has duplicate values")
    model = adapter.fit(frame)
    adapter.save(model, out_dir)
    ensemble = adapter.ensemble(model, frame)
    raw = ensemble.raw_predict(adapter.features(model, frame, where=train_path))
    summary: dict[str, Any] = {"out_dir": str(Path(out_dir)), "rows": frame.height, "trees": ensemble.n_trees,
                               "train_loss": float(np.mean(ensemble.loss.value(adapter.labels(model, frame), raw))),
                               "version": None}
    if register_as:
        from curation.tracking import RunRecorder
        from curation.tracking.registry import log_tree_model

        with RunRecorder("train_tree_model", adapter.config, metrics_path=Path(out_dir) / "metrics.json") as rec:
            rec.log_metrics({"train_loss": summary["train_loss"], "rows": float(frame.height)})
            summary["version"] = log_tree_model(model.booster, adapter.sidecar(model), register_as=register_as)
    return summary
