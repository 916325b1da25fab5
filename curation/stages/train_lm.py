"""Stage train_lm: the byte-level GPT on the corpus, with checkpoints and training positions."""

from curation.config.stages import TrainLMConfig
from curation.io import read_table
from curation.models.gpt import ByteGPTAdapter
from curation.stages._stage import run_stage
from curation.stages._training import train_and_log
from curation.tracking import RunRecorder

STAGE = "train_lm"


def main(cfg: TrainLMConfig) -> None:
    with RunRecorder(STAGE, cfg) as rec:
        train_and_log(
            rec, ByteGPTAdapter(cfg.model), stage=STAGE, train_path=cfg.train_data,
            train_frame=read_table(cfg.train_data), val_frame=read_table(cfg.val_data),
            train_cfg=cfg.train, out_dir=cfg.out_dir, register_as=cfg.register_as,
        )


def run() -> None:
    """Run this stage on the ``train_lm`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, TrainLMConfig, main)


if __name__ == "__main__":
    run()
