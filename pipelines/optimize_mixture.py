"""Stage optimize_mixture: group influence at the LM checkpoint → next domain mixture → mixture.yaml.

No DVC cycle: this stage reads train_lm's checkpoint and writes mixture.yaml, which only the later stage
train_lm_mixture declares as a params file (see curation/mixture/config.py).
"""

from curation.io import read_table
from curation.mixture.config import OptimizeMixtureConfig
from curation.mixture.mixture_file import write_mixture
from curation.mixture.optimize import load_checkpoint_model, optimize_mixture
from curation.mixture.report import mixture_table, write_report
from curation.tracking import RunRecorder
from pipelines._stage import run_stage

STAGE = "optimize_mixture"


def main(cfg: OptimizeMixtureConfig) -> None:
    adapter, model, path = load_checkpoint_model(cfg.checkpoint)
    train, val = read_table(cfg.train_data), read_table(cfg.val_data)
    with RunRecorder(STAGE, cfg) as rec:
        rec.log_dataset(train, name=f"{STAGE}-train", source=cfg.train_data)
        result = optimize_mixture(adapter, model, train, val, cfg)
        write_mixture(result.weights, cfg.out, source={
            "optimizer": cfg.optimizer, "checkpoint": str(path), "hessian": result.influence.hessian,
            "tasks": list(result.influence.tasks), "success": result.solution.success, "mlflow_run": rec.run_id})
        paths = write_report(result, cfg.report_dir, optimizer=cfg.optimizer, checkpoint=str(path))
        for key in ("heatmap", "mixture", "report"):
            rec.log_artifact(paths[key], "plots" if key != "report" else None)
        rec.log_artifact(paths["influence"], "scores")
        rec.log_artifact(cfg.out)
        rec.log_frame(mixture_table(result), "mixture/mixture.parquet")
        rec.set_tags({"curation.mixture_success": result.solution.success})
        rec.log_metrics({
            **{f"weight_{d}": w for d, w in result.weights.items()},
            **{f"prior_{d}": float(w) for d, w in zip(result.domains, result.prior, strict=True)},
            **{f"val_loss_{t}": v for t, v in result.task_losses.items()},
            "optimizer_success": float(result.solution.success),
            "proxy_runs": result.proxy_runs,
        })


if __name__ == "__main__":
    run_stage(STAGE, OptimizeMixtureConfig, main)
