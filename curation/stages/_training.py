"""Glue shared by the training stages: train into the out folder, write the curve, log everything."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curation.io import atomic_path, file_digest
from curation.models.base import ModelAdapter
from curation.reports import HTMLReport, line_plot
from curation.tracking import RunRecorder
from curation.training import TrainConfig, TrainResult, train
from curation.training.outputs import train_into


def train_and_log(
    rec: RunRecorder,
    adapter: ModelAdapter,
    *,
    stage: str,
    train_path: str,
    train_frame: pl.DataFrame,
    val_frame: pl.DataFrame,
    train_cfg: TrainConfig,
    out_dir: str,
    register_as: str,
) -> TrainResult:
    """Train, publish checkpoints atomically, write ``plots/<stage>/curve.csv`` and log it all to MLflow."""
    rec.log_dataset(train_frame, name=f"{stage}-train", source=train_path)
    result = train_into(
        out_dir,
        lambda tmp: train(adapter, train_frame, train_cfg, checkpoint_dir=tmp, val_frame=val_frame),
        source_digest=file_digest(train_path),
        config_hash=rec.config_hash,
    )
    plots = Path("plots") / stage
    with atomic_path(plots / "curve.csv") as tmp:
        result.curve.write_csv(tmp)
    curve = result.curve.drop_nulls()
    png = line_plot(
        {"train": (curve["step"], curve["train_loss"]), "validation": (curve["step"], curve["val_loss"])},
        plots / "curve.png", title=f"{stage}: loss", xlabel="step", ylabel="loss",
    )
    rec.log_curve(result.curve)
    rec.log_artifact(png, "plots")
    rec.log_artifact(Path(out_dir) / "checkpoints.json", "checkpoints")
    rec.log_frame(result.positions, "positions/positions.parquet")
    headline = {
        "final_train_loss": float(curve["train_loss"][-1]),
        "final_val_loss": float(curve["val_loss"][-1]),
        "n_checkpoints": len(result.checkpoints),
        "parameters": sum(p.numel() for p in result.model.parameters()),
    }
    rec.log_metrics(headline)
    report = HTMLReport(f"{stage}: training", subtitle=f"run {rec.run_id}")
    report.heading("Headline figures").key_values({**headline, "train_examples": train_frame.height})
    report.heading("Loss curve").image(png, caption="mean train loss per evaluation window and validation loss")
    report.heading("Checkpoints").table(pl.DataFrame(result.checkpoints))
    report.heading("First examples in training order").table(result.positions.head(10))
    rec.log_report(report.render())
    if register_as:
        from curation.models.registered import write_registered
        from curation.tracking.registry import register_checkpoint

        last = Path(out_dir) / result.checkpoints[-1]["file"]
        version = register_checkpoint(last, register_as, tags={"curation.stage": stage})
        write_registered(last, f"models:/{register_as}/{version}")
        rec.set_tags({"curation.registered_model": f"models:/{register_as}/{version}"})
    return result
