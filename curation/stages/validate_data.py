"""Stage validate_data: every input table against its data contract (Great Expectations)."""

from pathlib import Path

import polars as pl

from curation.config.stages import ValidateDataConfig
from curation.io import write_json
from curation.reports import HTMLReport, bar_plot
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.validation import CONTRACTS, validate_table

STAGE = "validate_data"


def main(cfg: ValidateDataConfig) -> None:
    with RunRecorder(STAGE, cfg) as rec:
        reports = []
        for spec in cfg.tables:
            label_range = (0, spec.n_classes - 1) if spec.n_classes else None
            try:
                _, report = validate_table(spec.path, CONTRACTS[spec.contract], label_range=label_range)
            except Exception as exc:
                rec.log_dict({"table": spec.path, "error": str(exc)}, "validation/failure.json")
                raise
            reports.append(report.to_dict())
        write_json({"tables": reports, "config_hash": rec.config_hash}, cfg.report)
        rec.log_artifact(cfg.report, "validation")
        report = HTMLReport("validate_data: data contracts", subtitle=f"run {rec.run_id}")
        png = bar_plot({Path(r["source"]).name: r["rows"] for r in reports}, Path("plots") / STAGE / "rows.png",
                       title="rows validated per table", ylabel="rows")
        rec.log_artifact(png, "plots")
        report.image(png)
        for r in reports:
            report.heading(f"{r['source']} ({r['contract']}, {r['rows']} rows)").table(pl.DataFrame(r["expectations"]))
        rec.log_report(report.render())
        rec.log_metrics({"tables_validated": len(reports), "rows_validated": sum(r["rows"] for r in reports)})


def run() -> None:
    """Run this stage on the ``validate_data`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, ValidateDataConfig, main)


if __name__ == "__main__":
    run()
