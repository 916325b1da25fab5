"""Stage select_targeted: pick the pool rows that help a few target tasks according to the trained model (LESS by
default; GIST, BIDS, TAROT, MATES, NN-CIFT, DEALRec, IDEAL by ``method``), under the Selector's budget, with the
outputs of ``select_data`` (curation.selection.run_targeted); the pool, targets and kept rows are logged to the
stage's MLflow run with an HTML report of the selection."""

from pathlib import Path

from curation.config.stages import SelectTargetedConfig
from curation.io import read_table
from curation.selection.report import record_selection
from curation.selection.run_targeted import read_targets, run_targeted_selection
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "select_targeted"


def main(cfg: SelectTargetedConfig) -> None:
    out, report_dir = Path(cfg.out_dir), Path(cfg.report_dir)
    with RunRecorder(STAGE, cfg) as rec:
        result = run_targeted_selection(
            cfg.pool, out, method=cfg.method, options=cfg.options, selector=cfg.selector, checkpoints=cfg.checkpoints,
            targets=cfg.targets, task_column=cfg.task_column, targets_per_task=cfg.targets_per_task,
            features_from={"name": cfg.features_from, "options": cfg.feature_options})
        rec.log_dataset(read_table(cfg.pool), name="pool", source=cfg.pool, context="input")
        rec.log_dataset(read_targets(cfg.targets, task_column=cfg.task_column, per_task=cfg.targets_per_task),
                        name="targets", source=cfg.targets, context="target")
        record_selection(rec, out, report_dir, title=f"Targeted data selection: {cfg.method}",
                         subtitle=f"{cfg.pool} for the {cfg.task_column} tasks of {cfg.targets}, model "
                                  f"{cfg.checkpoints}",
                         manifest=result.manifest, selection=result.selection,
                         headline={k: result.manifest[k] for k in ("rows_in", "kept", "dropped")} | result.figures)


def run() -> None:
    """Run this stage on the ``select_targeted`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, SelectTargetedConfig, main)


if __name__ == "__main__":
    run()
