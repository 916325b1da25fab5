"""Stage detect_label_errors: TracIn self-influence of every digits training example (from the compute_gradients
store), or with a ``tree`` block a boosted-tree model's BoostIn/TREX/LeafInfluence self-influence ->
SelfInfluenceSelector -> filtered training table + manifest. With known flipped ids the report shows
the detection precision-recall curve and average precision."""

from pathlib import Path

import polars as pl

from curation.gbdt.stage import tree_self_influence_frame
from curation.io import read_table, write_parquet
from curation.issue_tables import dataset_summary, issue_table
from curation.models.registered import registered_uri
from curation.reports import HTMLReport, histogram, line_plot
from curation.selection import SelfInfluenceSelector, write_filtered
from curation.selection.config import DetectLabelErrorsConfig
from curation.selection.detection import detection_metrics, pr_curve
from curation.selection.model_tags import label_error_rate, tag_label_error_rate
from curation.selection.self_influence import REASON
from curation.stages import _influence
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "detect_label_errors"


def main(cfg: DetectLabelErrorsConfig) -> None:
    if cfg.tree.model:  # a boosted-tree model: tree self-influence (boostin, trex, leaf_influence)
        train_data, checkpoints, method = cfg.tree.train, cfg.tree.model, f"{cfg.tree.method}_self_influence"
    else:
        gcfg = _influence.gradients_config(cfg.gradients_stage)
        job = gcfg.classifier
        ctx = _influence.job_context(job)
        train_data, checkpoints, method = job.train_data, job.checkpoints, "tracin_self_influence"
    report_dir, plots = Path(cfg.report_dir), Path(cfg.report_dir) / "plots"
    with RunRecorder(STAGE, cfg) as rec:
        scores = tree_self_influence_frame(cfg.tree) if cfg.tree.model else pl.DataFrame(
            {"example_id": ctx.train["example_id"],
             "score": _influence.tracin(job, gcfg.store, "classifier", normalize="none").self_influence(ctx)})
        selector = SelfInfluenceSelector(cfg.selector)
        selection = selector.select(scores)
        manifest = write_filtered(train_data, selection, cfg.out_dir, selector=selector.name, config=cfg.selector)
        write_parquet(selection, report_dir / "selection.parquet")
        issues = issue_table(selection["example_id"], selection["score"], issue="label",
                             flagged=~selection["keep"].to_numpy() if cfg.selector.action == "drop"
                             else (selection["reason"] == REASON).to_numpy())
        summary_row = dataset_summary(issues, issue="label", method=method)
        write_parquet(issues, report_dir / "label_issues.parquet")
        write_parquet(summary_row, report_dir / "summary.parquet")
        report = HTMLReport(f"Label errors by {method.replace('_', ' ')}", subtitle=f"{train_data}")
        report.key_values({k: manifest[k] for k in ("rows_in", "kept", "dropped", "config_hash", "source_digest")})
        summary = {"rows_in": manifest["rows_in"], "kept": manifest["kept"], "dropped": manifest["dropped"],
                   "label_error_rate": label_error_rate(manifest)}
        rec.log_metrics(summary)
        metrics: dict[str, float] = {}
        if cfg.known_errors:
            known = read_table(cfg.known_errors, columns=["example_id"])["example_id"].to_list()
            metrics = detection_metrics(scores, known, fraction=cfg.selector.fraction)
            rec.log_metrics(metrics)
            report.heading("Detection of the known flipped labels").key_values(metrics)
            recall, precision = pr_curve(scores, known)
            report.image(line_plot({"self-influence": (recall, precision)}, plots / "precision_recall.png",
                                   title=f"AP {metrics['average_precision']:.3f}", xlabel="recall",
                                   ylabel="precision"), caption="detection precision-recall curve")
            flipped = scores.filter(pl.col("example_id").is_in(known))["score"]
            clean = scores.filter(~pl.col("example_id").is_in(known))["score"]
            for name, values in (("flipped", flipped), ("clean", clean)):
                report.image(histogram(values.log(), plots / f"self_influence_{name}.png",
                                       title=f"log self-influence, {name} labels", xlabel="log score"),
                             caption=f"{name} labels")
        report.heading("Highest self-influence").table(
            selection.sort("rank").head(20).join(read_table(train_data).select("example_id", "label"),
                                                 on="example_id"))
        tag_model = registered_uri(checkpoints) if cfg.tag_model == "auto" else (cfg.tag_model or None)
        if tag_model:
            tag_label_error_rate(tag_model, summary, metrics, run_id=rec.run_id)
            report.key_values({"tagged model version": tag_model})
        report.write(report_dir / "report.html")
        rec.log_artifact(report_dir / "report.html")
        rec.log_artifact(plots, "plots")
        rec.log_artifact(Path(cfg.out_dir) / "manifest.json", "datasets")
        rec.log_frame(selection, "scores/selection.parquet")
        rec.log_frame(issues, "scores/label_issues.parquet")
        rec.log_frame(summary_row, "scores/summary.parquet")
        rec.log_frame(read_table(Path(cfg.out_dir) / "filtered.parquet"), "datasets/filtered.parquet")


def run() -> None:
    """Run this stage on the ``detect_label_errors`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, DetectLabelErrorsConfig, main)


if __name__ == "__main__":
    run()
