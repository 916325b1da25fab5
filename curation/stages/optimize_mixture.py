"""Stage optimize_mixture: group influence at the LM checkpoint → next domain mixture → mixture.yaml.

No DVC cycle: this stage reads train_lm's checkpoint and writes mixture.yaml, which only the later stage
train_lm_mixture declares as a params file (see curation/mixture/config.py). The run also checks that group
influence is additive (S·w vs the measured influence of real mixed samples; metric additivity_pearson).
"""

from curation.io import read_table
from curation.mixture.config import OptimizeMixtureConfig
from curation.mixture.optimize import load_checkpoint_model, optimize_mixture
from curation.mixture.record import record_round
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "optimize_mixture"


def main(cfg: OptimizeMixtureConfig) -> None:
    adapter, model, path = load_checkpoint_model(cfg.checkpoint)
    train, val = read_table(cfg.train_data), read_table(cfg.val_data)
    with RunRecorder(STAGE, cfg) as rec:
        result = optimize_mixture(adapter, model, train, val, cfg)
        record_round(rec, result, cfg, checkpoint=str(path), train=train)


def run() -> None:
    """Run this stage on the ``optimize_mixture`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, OptimizeMixtureConfig, main)


if __name__ == "__main__":
    run()
