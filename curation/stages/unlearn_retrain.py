"""Stage unlearn_retrain: the exact-unlearning reference, retrained from scratch without the forget set using the
original training recipe (adapter, model and train settings of ``recipe_stage``'s params block), plus calibration
retrains with other seeds for verify_unlearning's calibrated membership attack."""

import dataclasses
from pathlib import Path

from curation.config import load
from curation.config.stages import TrainClassifierConfig
from curation.errors import ConfigError
from curation.io import read_table
from curation.io.params import load_stage_params
from curation.models.registered import write_registered
from curation.plugins import get_plugin
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.unlearning.config import UnlearnRetrainConfig
from curation.unlearning.operators import UnlearnConfig, save_unlearned, unlearn
from curation.unlearning.requests import read_request, split_forget_retain

STAGE = "unlearn_retrain"


def main(cfg: UnlearnRetrainConfig) -> None:
    recipe = load(TrainClassifierConfig, load_stage_params(cfg.recipe_stage), where=f"params.yaml:{cfg.recipe_stage}")
    train_cfg = recipe.train if cfg.seed is None else dataclasses.replace(recipe.train, seed=cfg.seed)
    if len(set(cfg.calibration_seeds)) < len(cfg.calibration_seeds) or train_cfg.seed in cfg.calibration_seeds:
        raise ConfigError(f"params.yaml:{STAGE}: calibration_seeds {list(cfg.calibration_seeds)} must be distinct "
                          f"and differ from the reference's seed {train_cfg.seed}")
    adapter = get_plugin("curation.model_adapters", recipe.adapter)(recipe.model)
    train = read_table(cfg.train_data)
    forget, retain = split_forget_retain(train, read_request(cfg.request, train))
    op = UnlearnConfig(method="retrain", train=train_cfg)
    with RunRecorder(STAGE, cfg) as rec:
        result = unlearn(adapter, None, forget, retain, op)
        save_unlearned(cfg.out, adapter, result, op, base=f"params.yaml:{cfg.recipe_stage}")
        seconds = result.seconds
        for seed in cfg.calibration_seeds:
            cal_op = dataclasses.replace(op, train=dataclasses.replace(train_cfg, seed=seed))
            cal = unlearn(adapter, None, forget, retain, cal_op)
            save_unlearned(Path(cfg.calibration_dir) / f"seed-{seed}.safetensors", adapter, cal, cal_op,
                           base=f"params.yaml:{cfg.recipe_stage}")
            seconds += cal.seconds
        rec.log_metrics({"forget_examples": forget.height, "retain_examples": retain.height,
                         "unlearn_seconds": result.seconds, "calibration_models": len(cfg.calibration_seeds),
                         "retrain_seconds_total": seconds})
        if cfg.register_as:
            from curation.tracking.registry import register_checkpoint

            version = register_checkpoint(cfg.out, cfg.register_as, tags={"curation.stage": STAGE})
            write_registered(cfg.out, f"models:/{cfg.register_as}/{version}")


def run() -> None:
    """Run this stage on the ``unlearn_retrain`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, UnlearnRetrainConfig, main)


if __name__ == "__main__":
    run()
