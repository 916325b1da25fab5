"""Stage train_lm_mixture: continue the LM from train_lm's checkpoint with domains sampled by mixture.yaml.

mixture.yaml is a params file of this stage, so `dvc repro` after a mixture change retrains here (closed loop).
"""

from pathlib import Path

from curation.io import atomic_path, file_digest, read_table
from curation.mixture.closed_loop import tikmix_reestimator, train_on_mixture
from curation.mixture.config import TrainLMMixtureConfig
from curation.mixture.labels import task_losses
from curation.mixture.mixture_file import read_mixture
from curation.mixture.optimize import load_checkpoint_model
from curation.models.gpt import ByteGPTAdapter
from curation.reports import line_plot
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.training.outputs import train_into

STAGE = "train_lm_mixture"


def main(cfg: TrainLMMixtureConfig) -> None:
    weights = read_mixture(cfg.mixture)
    adapter, model = ByteGPTAdapter(cfg.model), None
    if cfg.init_from:
        adapter, model, _ = load_checkpoint_model(cfg.init_from)
    train, val = read_table(cfg.train_data), read_table(cfg.val_data)
    reestimate = tikmix_reestimator(adapter, train, val, cfg.influence, cfg.tikmix_d) if cfg.reestimate_every else None
    with RunRecorder(STAGE, cfg) as rec:
        rec.log_dataset(train, name=f"{STAGE}-train", source=cfg.train_data)
        runs = []

        def run(tmp: Path):
            runs.append(train_on_mixture(adapter, train, weights, cfg.train, model=model, val_frame=val,
                                         checkpoint_dir=tmp, reestimate_every=cfg.reestimate_every,
                                         reestimate=reestimate))
            return runs[-1].result

        result = train_into(cfg.out_dir, run, source_digest=file_digest(cfg.train_data))
        rec.log_dict({"mixtures": runs[-1].mixtures}, "mixture/schedule.json")
        plots = Path("plots") / STAGE
        with atomic_path(plots / "curve.csv") as tmp:
            result.curve.write_csv(tmp)
        curve = result.curve.drop_nulls()
        rec.log_artifact(line_plot({"train": (curve["step"], curve["train_loss"]),
                                    "validation": (curve["step"], curve["val_loss"])},
                                   plots / "curve.png", title=f"{STAGE}: loss", xlabel="step", ylabel="loss"), "plots")
        rec.log_curve(result.curve)
        rec.log_artifact(cfg.mixture)
        tasks = sorted(val[cfg.influence.task_column].unique().to_list())
        losses = task_losses(adapter, result.model, val, cfg.influence.task_column, tasks)
        rec.log_metrics({**{f"val_loss_{t}": v for t, v in losses.items()},
                         **{f"weight_{d}": w for d, w in weights.items()},
                         "final_val_loss": float(curve["val_loss"][-1]), "reestimations": len(runs[-1].mixtures) - 1})


def run() -> None:
    """Run this stage on the ``train_lm_mixture`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, TrainLMMixtureConfig, main)


if __name__ == "__main__":
    run()
