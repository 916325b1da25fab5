"""Put a label-error scan's headline on the registered model version it scanned, so the registry UI shows how
much of that model's training data looked mislabelled next to the model itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def label_error_rate(manifest: Mapping[str, Any]) -> float:
    """Share of the input rows a selection manifest dropped or flagged as suspected label errors."""
    acted = manifest["rows_in"] - manifest["kept"] + sum(manifest["flagged_by_reason"].values())
    return acted / max(manifest["rows_in"], 1)


def label_error_tags(summary: Mapping[str, float], detection: Mapping[str, float], *,
                     run_id: str | None) -> dict[str, str]:
    """Tags from the selection summary (``rows_in``, ``label_error_rate``) and optional detection metrics;
    ``run_id`` names the MLflow run holding the full scan (None outside a run)."""
    tags = {
        "curation.label_errors.rate": f"{summary['label_error_rate']:.4f}",
        "curation.label_errors.flagged": str(round(summary["label_error_rate"] * summary["rows_in"])),
        "curation.label_errors.rows": str(int(summary["rows_in"])),
    }
    if run_id:
        tags["curation.label_errors.run_id"] = run_id
    if "average_precision" in detection:
        tags["curation.label_errors.average_precision"] = f"{detection['average_precision']:.4f}"
        tags["curation.label_errors.precision_at_rate"] = f"{detection['precision_at_fraction']:.4f}"
    return tags


def tag_label_error_rate(uri: str, summary: Mapping[str, float], detection: Mapping[str, float], *,
                         run_id: str | None) -> dict[str, str]:
    """Set :func:`label_error_tags` on the model version ``uri`` (``models:/name/version``); returns them."""
    from curation.tracking.registry import set_model_version_tags

    tags = label_error_tags(summary, detection, run_id=run_id)
    set_model_version_tags(uri, tags)
    return tags
