"""Stage train_lm: the byte-level GPT on the corpus, with checkpoints and training positions."""

from curation.config.stages import TrainLMConfig
from curation.gradients.cli_support import read_examples
from curation.models.gpt import ByteGPTAdapter
from curation.stages._stage import run_stage
from curation.stages._training import train_and_log
from curation.tracking import RunRecorder

STAGE = "train_lm"


def main(cfg: TrainLMConfig) -> None:
    adapter = ByteGPTAdapter(cfg.model)
    train = read_examples(cfg.train_data, what="training", adapter=adapter)  # the text contract, before any run
    val = read_examples(cfg.val_data, what="validation", adapter=adapter)
    with RunRecorder(STAGE, cfg) as rec:
        train_and_log(
            rec, adapter, stage=STAGE, train_path=cfg.train_data, train_frame=train, val_frame=val,
            train_cfg=cfg.train, out_dir=cfg.out_dir, register_as=cfg.register_as,
        )


def run() -> None:
    """Run this stage on the ``train_lm`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, TrainLMConfig, main)


if __name__ == "__main__":
    run()
