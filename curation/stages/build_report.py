"""Stage build_report: the pipeline report (data summary, training curves, metrics, links to stage runs)."""

import json
import os
from pathlib import Path

import polars as pl

from curation.config.stages import BuildReportConfig
from curation.io import read_table
from curation.reports import HTMLReport, bar_plot, line_plot
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.tracking.recorder import latest_stage_runs

STAGE = "build_report"


def main(cfg: BuildReportConfig) -> None:
    plots = Path("plots") / STAGE
    with RunRecorder(STAGE, cfg) as rec:
        report = HTMLReport("Curation pipeline report", subtitle=f"run {rec.run_id}")
        corpus = read_table(cfg.corpus)
        summary = corpus.group_by("domain").agg(
            pl.len().alias("passages"), pl.col("text").str.len_chars().mean().round(1).alias("mean_chars"),
            pl.col("source").n_unique().alias("sources"),
        ).sort("domain")
        report.heading("Data summary").table(summary)
        report.image(bar_plot(dict(summary.select("domain", "passages").iter_rows()), plots / "domains.png",
                              title="training passages per domain", ylabel="passages"), caption="passages per domain")
        report.heading("Training curves")
        for csv in map(Path, cfg.curves):
            if csv.exists():
                curve = pl.read_csv(csv).drop_nulls()
                png = line_plot({"train": (curve["step"], curve["train_loss"]),
                                 "validation": (curve["step"], curve["val_loss"])},
                                plots / f"{csv.parent.name}.png", title=f"{csv.parent.name}: loss",
                                xlabel="step", ylabel="loss")
                report.image(png, caption=f"{csv.parent.name} loss curve")
        report.heading("Headline metrics")
        metrics = {}
        for path in sorted(Path(cfg.metrics_dir).glob("*.json")):
            for key, value in json.loads(path.read_text()).items():
                metrics[f"{path.stem}.{key}"] = value
        report.key_values(metrics)
        report.heading("Stage runs")
        runs = latest_stage_runs()
        report.table(pl.DataFrame(runs, schema=["stage", "run_name", "status", "run_id", "ui_path"]))
        ui_base = os.environ.get("CURATION_UI_URL", "http://127.0.0.1:5000/").rstrip("/") + "/"
        for run in runs:  # clickable: the MLflow UI run page of each stage (serve it with `curate ui`)
            report.link(f"{run['stage']}: {run['run_name']} ({run['status']})", ui_base + run["ui_path"])
        report.write(cfg.out)
        rec.log_artifact(cfg.out)
        rec.log_artifact(plots, "plots")
        rec.log_metrics({"stages_reported": len(runs), "metrics_reported": len(metrics)})


def run() -> None:
    """Run this stage on the ``build_report`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, BuildReportConfig, main)


if __name__ == "__main__":
    run()
