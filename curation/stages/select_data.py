"""Stage select_data: score the pool against a target with a registered selection scorer (DSIR by default), keep
a budgeted set with the Selector, and write the filtered pool, the decision, the manifest and the
``not_selected`` issue table (curation.selection.run); the pool and the kept rows are logged to the stage's MLflow
run as its input and output datasets, with a report of the selection."""

import hashlib
from pathlib import Path

import polars as pl

from curation.config.stages import SelectDataConfig
from curation.io import read_table
from curation.reports import HTMLReport, histogram
from curation.selection.run import run_selection
from curation.selection.text_shards import source_files
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "select_data"


def main(cfg: SelectDataConfig) -> None:
    out, report_dir = Path(cfg.out_dir), Path(cfg.report_dir)
    with RunRecorder(STAGE, cfg) as rec:
        result = run_selection(cfg.pool, cfg.target, out, scorer={"name": cfg.scorer, "options": cfg.options},
                               selector=cfg.selector, target_filter=cfg.target_filter,
                               kl_reduction=cfg.kl_reduction)
        manifest, selection = result.manifest, result.selection
        digests = manifest["source_digest"]  # one per shard file
        digest = digests if isinstance(digests, str) else hashlib.sha256("".join(digests).encode()).hexdigest()
        rec.log_dataset_files(source_files(cfg.pool), name="pool", source=cfg.pool, context="input",
                              digest=digest[:16])
        kept = read_table(out / "filtered.parquet")
        rec.log_dataset(read_table(cfg.target), name="target", source=cfg.target, context="target")
        rec.log_dataset(kept, name="selected", source=str(out / "filtered.parquet"), context="output")
        headline = {k: manifest[k] for k in ("rows_in", "kept", "dropped")}
        headline.update({k: manifest[k] for k in ("kl_reduction",) if k in manifest})
        rec.log_metrics(headline)
        report = HTMLReport(f"Data selection: {cfg.scorer}", subtitle=f"{cfg.pool} towards {cfg.target}")
        report.key_values({**headline, "budget": manifest["budget"], "dropped by reason":
                           manifest["dropped_by_reason"], "source digest": manifest["source_digest"]})
        for name, rows in (("kept", selection.filter("keep")), ("not kept", selection.filter(~pl.col("keep")))):
            if rows.height:
                report.image(histogram(rows["score"], report_dir / "plots" / f"score_{name.replace(' ', '_')}.png",
                                       title=f"selection score, {name}", xlabel="score"), caption=name)
        report.heading("Highest-ranked kept rows").table(
            selection.filter("keep").sort("rank").head(20).join(kept, on="example_id", how="left"))
        report.write(report_dir / "report.html")
        rec.log_artifact(report_dir / "report.html")
        if (report_dir / "plots").is_dir():
            rec.log_artifact(report_dir / "plots", "plots")
        for name in ("manifest.json", "selection.parquet", "not_selected_issues.parquet", "summary.parquet"):
            rec.log_artifact(out / name, "selection")


def run() -> None:
    """Run this stage on the ``select_data`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, SelectDataConfig, main)


if __name__ == "__main__":
    run()
