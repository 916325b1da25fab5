"""Write a verification's evidence (tables, verdict JSON, HTML report) and log it into an open RunRecorder.

The caller (a pipeline or the CLI) opens the run; this module only fills it, and tags the examined registered
model version with the verdict.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curation.io import write_json, write_parquet
from curation.reports import HTMLReport, bar_plot, histogram
from curation.tracking import RunRecorder
from curation.unlearning.verify import Verification


def write_report(v: Verification, out_dir: Path, *, title: str) -> Path:
    """Self-contained HTML report: verdict, criteria, attack AUCs, loss histograms, REMIND summary."""
    report = HTMLReport(title, subtitle="unlearning verification")
    report.heading("Verdict").paragraph(v.verdict_line).key_values({
        "verified": v.passed, "severity (max over criteria, >1 fails)": v.severity,
        "conclusive (the original model fails the same criteria)": bool(v.metrics.get("conclusive")),
        "original model severity": v.metrics.get("original_severity"),
        "reference (retrained) model": bool(v.metrics.get("has_reference")),
        "calibration models (retrains without the forget rows, for the calibrated attack)":
            int(v.metrics.get("calibration_models_original", 0)),
        "forget rows for 95 % power at the original's measured effect": v.metrics.get("power_min_forget_rows", "n/a"),
    })
    report.heading("Criteria").table(v.criteria)
    report.heading("Membership attacks, forget vs holdout (calibrated = log-likelihood minus the retrains')")
    report.table(attack_table(v.metrics))
    aucs = {k.removeprefix("mia_auc_"): val for k, val in v.metrics.items()
            if k.startswith("mia_auc_") and "null_se" not in k}
    report.heading("MIA AUC, forget vs holdout (0.5 = indistinguishable from unseen data)")
    report.image(bar_plot(aucs, out_dir / "plots" / "mia_auc.png", title="MIA AUC by attack and model",
                          ylabel="AUC"), caption="MIA AUC per attack and model")
    for split in ("forget", "holdout"):
        losses = v.scores.filter((pl.col("model") == "unlearned") & (pl.col("split") == split))["loss_value"]
        report.image(histogram(losses.to_list(), out_dir / "plots" / f"loss_{split}.png",
                               title=f"unlearned model: {split} losses", xlabel="loss", bins=30),
                     caption=f"{split} losses under the unlearned model")
    report.heading("All metrics").key_values(dict(sorted(v.metrics.items())))
    if v.remind is not None:
        summary = v.remind.group_by("model", "split").agg(
            pl.col("original_loss").mean(), pl.col("loss_variance").mean(), pl.col("local_curvature").mean(),
            pl.len().alias("rows"),
        ).sort("model", "split")
        report.heading("REMIND landscape features (means)").table(summary)
    return report.write(out_dir / "report.html")


def attack_table(metrics: dict[str, float]) -> pl.DataFrame:
    """One row per (attack, model) with its MIA AUC and TPR at 1 % and 5 % FPR."""
    rows = []
    for attack in ("loss", "min_k", "min_k_pp", "calibrated"):
        for model in ("original", "unlearned", "reference"):
            if f"mia_auc_{attack}_{model}" in metrics:
                rows.append({"attack": attack, "model": model, "auc": metrics[f"mia_auc_{attack}_{model}"],
                             "tpr_at_1pct_fpr": metrics[f"mia_tpr_at_1fpr_{attack}_{model}"],
                             "tpr_at_5pct_fpr": metrics[f"mia_tpr_at_5fpr_{attack}_{model}"]})
    return pl.DataFrame(rows)


def record_verification(
    rec: RunRecorder, v: Verification, out_dir: str | Path, *, tag_model: str | None = None, title: str = ""
) -> Path:
    """Write ``out_dir/{verdict.json,criteria.parquet,scores.parquet,remind.parquet,report.html}``, log them with
    the metrics and verdict tags to the run, and tag ``tag_model`` (a ``models:/`` URI) when given."""
    out = Path(out_dir)
    write_parquet(v.criteria, out / "criteria.parquet")
    write_parquet(v.scores, out / "scores.parquet")
    if v.remind is not None:
        write_parquet(v.remind, out / "remind.parquet")
    report = write_report(v, out, title=title or "Unlearning verification")
    verdict = {"verdict": v.verdict, "verdict_line": v.verdict_line, "verified": v.passed, "severity": v.severity,
               "tags": v.tags(),
               "criteria": v.criteria.to_dicts(), "tagged_model": tag_model or ""}
    write_json(verdict, out / "verdict.json")
    rec.log_metrics({k: val for k, val in v.metrics.items()})
    rec.set_tags(v.tags())
    for name in ("verdict.json", "criteria.parquet", "report.html"):
        rec.log_artifact(out / name)
    rec.log_artifact(out / "plots", "plots")
    rec.log_artifact(out / "scores.parquet", "scores")
    if v.remind is not None:
        rec.log_artifact(out / "remind.parquet", "scores")
    if tag_model:
        from curation.tracking.registry import set_model_version_tags

        set_model_version_tags(tag_model, v.tags())
        rec.set_tags({"unlearning.examined_model": tag_model})
    return report
