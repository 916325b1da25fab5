"""The HTML report of a selection run and its MLflow artifacts, shared by the ``select_data``, ``select_targeted``
and ``refresh_predictor`` stages: headline figures, the budget, score histograms of kept and not-kept rows and the
highest-ranked kept rows with their text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from curation.io import read_table
from curation.reports import HTMLReport, histogram

if TYPE_CHECKING:
    from curation.tracking import RunRecorder

SELECTION_FILES = ("manifest.json", "selection.parquet", "not_selected_issues.parquet", "summary.parquet")


def write_selection_report(title: str, subtitle: str, manifest: dict[str, Any], selection: pl.DataFrame,
                           kept: pl.DataFrame, headline: dict[str, float], report_dir: str | Path) -> Path:
    """Write ``report_dir/report.html`` (plots under ``report_dir/plots``) and return its path."""
    report_dir = Path(report_dir)
    report = HTMLReport(title, subtitle=subtitle)
    report.key_values({**headline, "budget": manifest["budget"], "method options": manifest["scorer"]["options"],
                       "dropped by reason": manifest["dropped_by_reason"], "source digest": manifest["source_digest"]})
    for name, rows in (("kept", selection.filter("keep")), ("not kept", selection.filter(~pl.col("keep")))):
        if rows.height:
            report.image(histogram(rows["score"], report_dir / "plots" / f"score_{name.replace(' ', '_')}.png",
                                   title=f"selection score, {name}", xlabel="score"), caption=name)
    report.heading("Highest-ranked kept rows").table(
        selection.filter("keep").sort("rank").head(20).join(kept, on="example_id", how="left"))
    return report.write(report_dir / "report.html")


def record_selection(rec: RunRecorder, out_dir: Path, report_dir: str | Path, *, title: str, subtitle: str,
                     manifest: dict[str, Any], selection: pl.DataFrame, headline: dict[str, float]) -> None:
    """The MLflow record every selection stage ends with: the kept rows (``out_dir/filtered.parquet``) as the run's
    ``selected`` output dataset, ``headline`` as metrics, and the report (written here, see
    ``write_selection_report``), its plots and the selection outputs (``SELECTION_FILES``) as artifacts."""
    kept_path = out_dir / "filtered.parquet"
    kept = read_table(kept_path)
    rec.log_dataset(kept, name="selected", source=str(kept_path), context="output")
    rec.log_metrics(headline)
    report = write_selection_report(title, subtitle, manifest, selection, kept, headline, report_dir)
    rec.log_artifact(report)
    if (report.parent / "plots").is_dir():
        rec.log_artifact(report.parent / "plots", "plots")
    for name in SELECTION_FILES:
        rec.log_artifact(out_dir / name, "selection")
