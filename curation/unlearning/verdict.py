"""The unlearning verdict in plain words: "forgotten", "not forgotten" or "inconclusive: why, what size would do"."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from curation.unlearning.verify import UnlearningCheckConfig


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def verdict_line(
    passed: bool, criteria: pl.DataFrame, original_criteria: pl.DataFrame, metrics: Mapping[str, float],
    n_forget: int, n_holdout: int, cfg: UnlearningCheckConfig,
) -> str:
    """The verdict in plain words: "forgotten", "not forgotten" or "inconclusive", with why (and, when the check
    lacks power, the forget-request size that would give it)."""
    failed = criteria.filter(~pl.col("passed"))["criterion"].to_list()
    cal = "mia_auc_calibrated_original" in metrics
    auc_text = ""
    if cal:
        tol = criteria.filter(pl.col("criterion") == "mia_auc_calibrated_gap")["threshold"].item()
        auc_text = (f"calibrated MIA AUC {metrics['mia_auc_calibrated_unlearned']:.3f} vs the original's "
                    f"{metrics['mia_auc_calibrated_original']:.3f}; an exact retrain scores 0.5 +- {tol:.3f}")
    if metrics["conclusive"]:
        if passed:
            return f"forgotten: passes all {criteria.height} criteria, which the untouched original fails" + (
                f" ({auc_text})" if cal else "")
        return f"not forgotten: fails {', '.join(failed)}" + (f" ({auc_text})" if cal else "")
    tail = f"; the unlearned model fails {', '.join(failed)}" if failed else ""
    if not cal:
        return ("inconclusive: the untouched original passes the same criteria, so the check has no power here; "
                "give a retrained reference (and calibration retrains) for the calibrated attack" + tail)
    effect = metrics["mia_auc_calibrated_original"] - 0.5
    tol = original_criteria.filter(pl.col("criterion") == "mia_auc_calibrated_gap")["threshold"].item()
    head = (f"inconclusive: the untouched original passes the same criteria (calibrated MIA AUC "
            f"{metrics['mia_auc_calibrated_original']:.3f}, within 0.5 +- {tol:.3f} at {n_forget} forget and "
            f"{n_holdout} holdout rows), so these rows were never detectably memorised; ")
    if "power_min_forget_rows" in metrics:
        size = int(metrics["power_min_forget_rows"])
        return head + (f"at this per-row effect (AUC gap {effect:+.3f}) a request of >= {size} rows would give the "
                       f"check {100 * _phi(cfg.power_z):.0f} % power") + tail
    if effect > cfg.max_calibrated_auc_gap:
        return head + (f"its per-row effect (AUC gap {effect:+.3f}) is too small for {n_holdout} holdout rows at any "
                       "request size: more holdout rows are needed as well") + tail
    return head + (f"its per-row effect (AUC gap {effect:+.3f}) is not above the criterion's floor "
                   f"({cfg.max_calibrated_auc_gap:g}), so no request size gives power: the model does not memorise "
                   "single rows at this scale") + tail
