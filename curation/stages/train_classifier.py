"""Stage train_classifier: an MLP (or logistic regression) on the noisy digits, with checkpoints."""

import torch

from curation.config.stages import TrainClassifierConfig
from curation.gradients.cli_support import read_examples
from curation.plugins import get_plugin
from curation.stages._stage import run_stage
from curation.stages._training import train_and_log
from curation.tracking import RunRecorder

STAGE = "train_classifier"


def main(cfg: TrainClassifierConfig) -> None:
    adapter = get_plugin("curation.model_adapters", cfg.adapter)(cfg.model)
    train = read_examples(cfg.train_data, what="training", adapter=adapter)  # the model's contract, up front
    test = read_examples(cfg.test_data, what="test", adapter=adapter)
    with RunRecorder(STAGE, cfg) as rec:
        result = train_and_log(
            rec, adapter, stage=STAGE, train_path=cfg.train_data, train_frame=train, val_frame=test, train_cfg=cfg.train, out_dir=cfg.out_dir, register_as=cfg.register_as,
        )
        with torch.no_grad():
            batch = adapter.collate(test)
            accuracy = (adapter.logits(result.model, batch).argmax(-1) == batch["y"]).double().mean()
        rec.log_metrics({"test_accuracy": float(accuracy)})


def run() -> None:
    """Run this stage on the ``train_classifier`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, TrainClassifierConfig, main)


if __name__ == "__main__":
    run()
