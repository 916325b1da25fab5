"""Stage retrain_classifier: the classifier's own recipe (params block ``recipe_stage``) retrained on the
label-error-filtered table; test accuracy before (the original model) and after is the headline."""

import torch

from curation.config import load
from curation.config.stages import TrainClassifierConfig
from curation.gradients.jobs import load_checkpoints
from curation.io import read_table
from curation.io.params import load_stage_params
from curation.plugins import get_plugin
from curation.selection.config import RetrainClassifierConfig
from curation.stages._stage import run_stage
from curation.stages._training import train_and_log
from curation.tracking import RunRecorder

STAGE = "retrain_classifier"


def accuracy(adapter, model, frame) -> float:
    with torch.no_grad():
        batch = adapter.collate(frame)
        return float((adapter.logits(model, batch).argmax(-1) == batch["y"]).double().mean())


def main(cfg: RetrainClassifierConfig) -> None:
    recipe = load(TrainClassifierConfig, load_stage_params(cfg.recipe_stage), where=f"params.yaml:{cfg.recipe_stage}")
    adapter = get_plugin("curation.model_adapters", recipe.adapter)(recipe.model)
    test = read_table(recipe.test_data)
    base_adapter, base = load_checkpoints(cfg.baseline, last=1)
    with RunRecorder(STAGE, cfg) as rec:
        train = read_table(cfg.train_data)
        result = train_and_log(rec, adapter, stage=STAGE, train_path=cfg.train_data, train_frame=train,
                               val_frame=test, train_cfg=recipe.train, out_dir=cfg.out_dir, register_as="")
        before, after = accuracy(base_adapter, base[-1].model, test), accuracy(adapter, result.model, test)
        rec.log_metrics({"test_accuracy_before": before, "test_accuracy_after": after,
                         "test_accuracy_change": after - before, "train_rows": train.height})


def run() -> None:
    """Run this stage on the ``retrain_classifier`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, RetrainClassifierConfig, main)


if __name__ == "__main__":
    run()
