"""Write one mixture round's outputs and log them to MLflow — shared by the ``optimize_mixture`` stage and
``curate mixture optimize`` so both leave the same run: params (the resolved config), the mixture file, the
group-influence heat map, old/new mixture, additivity scatter, HTML report and headline metrics."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curation.mixture.config import OptimizeMixtureConfig
from curation.mixture.mixture_file import write_mixture
from curation.mixture.optimize import MixtureRound
from curation.mixture.report import mixture_table, write_report
from curation.tracking import RunRecorder


def round_metrics(result: MixtureRound) -> dict[str, float]:
    """Weights, prior, validation loss per task, optimiser success and the additivity Pearson."""
    return {
        **{f"weight_{d}": w for d, w in result.weights.items()},
        **{f"prior_{d}": float(w) for d, w in zip(result.domains, result.prior, strict=True)},
        **{f"val_loss_{t}": v for t, v in result.task_losses.items()},
        "optimizer_success": float(result.solution.success),
        "proxy_runs": result.proxy_runs,
        **(result.additivity.metrics() if result.additivity is not None else {}),
    }


def record_round(rec: RunRecorder, result: MixtureRound, cfg: OptimizeMixtureConfig, *, checkpoint: str,
                 train: pl.DataFrame) -> dict[str, Path]:
    """Write ``cfg.out`` and the report folder, and log both, the mixture table and the metrics to ``rec``'s run."""
    rec.log_dataset(train, name=f"{rec.stage}-train", source=cfg.train_data)
    write_mixture(result.weights, cfg.out, source={
        "optimizer": cfg.optimizer, "checkpoint": checkpoint, "hessian": result.influence.hessian,
        "tasks": list(result.influence.tasks), "success": result.solution.success, "mlflow_run": rec.run_id})
    paths = write_report(result, cfg.report_dir, optimizer=cfg.optimizer, checkpoint=checkpoint)
    for key in ("heatmap", "mixture", "additivity_plot"):
        if key in paths:
            rec.log_artifact(paths[key], "plots")
    rec.log_artifact(paths["report"])
    for key in ("influence", "additivity"):
        if key in paths:
            rec.log_artifact(paths[key], "scores")
    rec.log_artifact(cfg.out)
    rec.log_frame(mixture_table(result), "mixture/mixture.parquet")
    rec.set_tags({"curation.mixture_success": result.solution.success})
    rec.log_metrics(round_metrics(result))
    return paths
