"""Stage refresh_predictor: between training rounds (a ``schedule:`` entry), retrain the learned influence predictor
(MATES or NN-CIFT) on fresh oracle labels from the latest checkpoint, rescore the whole pool with it and write the
rescored selection (curation.selection.run_targeted). Metrics: the predictor's Spearman with the oracle on rows it
never saw (``heldout_spearman``), on its validation split, and the share of an all-oracle pass it saved
(``cost_saved``); logged to the stage's MLflow run with an HTML report."""

from pathlib import Path

from curation.config.stages import RefreshPredictorConfig
from curation.selection.report import record_selection
from curation.selection.run_targeted import run_targeted_selection
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "refresh_predictor"


def main(cfg: RefreshPredictorConfig) -> None:
    out, report_dir = Path(cfg.out_dir), Path(cfg.report_dir)
    with RunRecorder(STAGE, cfg) as rec:
        result = run_targeted_selection(
            cfg.pool, out, method=cfg.method, options=cfg.options, selector=cfg.selector, checkpoints=cfg.checkpoints,
            targets=cfg.targets, task_column=cfg.task_column, targets_per_task=cfg.targets_per_task,
            holdout=cfg.holdout)
        record_selection(rec, out, report_dir, title=f"Predictor refresh: {cfg.method}",
                         subtitle=_subtitle(cfg, result.figures), manifest=result.manifest,
                         selection=result.selection,
                         headline={k: result.manifest[k] for k in ("rows_in", "kept")} | result.figures)


def _subtitle(cfg: RefreshPredictorConfig, figures: dict[str, float]) -> str:
    """What the round did, and a plain warning when the predictor cost more than labelling every row would."""
    text = (f"retrained on oracle labels from {cfg.checkpoints}; held-out Spearman "
            f"{figures['heldout_spearman']:.3f}")
    if figures.get("cost_saved", 0.0) < 0:
        text += (f". This round cost more than the oracle on every row would ({figures['round_s']:.0f} s against "
                 f"{figures['all_oracle_s']:.0f} s): at this pool and reference size, label every row with the "
                 "oracle instead")
    return text


def run() -> None:
    """Run this stage on the ``refresh_predictor`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, RefreshPredictorConfig, main)


if __name__ == "__main__":
    run()
