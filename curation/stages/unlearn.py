"""Stage unlearn: apply an approximate unlearning operator (IAU, gradient ascent / difference) to the original
model for the forget request; the result is a new checkpoint, optionally a new registered model version."""

from curation.io import read_table
from curation.models.references import load_final_model as load_model
from curation.models.references import resolve_checkpoint
from curation.models.registered import write_registered
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.unlearning.config import UnlearnStageConfig
from curation.unlearning.operators import save_unlearned, unlearn
from curation.unlearning.requests import read_request, split_forget_retain

STAGE = "unlearn"


def main(cfg: UnlearnStageConfig) -> None:
    adapter, model = load_model(cfg.original)
    train = read_table(cfg.train_data)
    forget, retain = split_forget_retain(train, read_request(cfg.request, train))
    with RunRecorder(STAGE, cfg) as rec:
        result = unlearn(adapter, model, forget, retain, cfg.unlearn)
        save_unlearned(cfg.out, adapter, result, cfg.unlearn, base=str(resolve_checkpoint(cfg.original)))
        rec.log_metrics({"forget_examples": forget.height, "retain_examples": retain.height,
                         "unlearn_seconds": result.seconds})
        if cfg.register_as:
            from curation.tracking.registry import register_checkpoint

            tags = {"curation.stage": STAGE, "unlearning.method": cfg.unlearn.method}
            version = register_checkpoint(cfg.out, cfg.register_as, tags=tags)
            write_registered(cfg.out, f"models:/{cfg.register_as}/{version}")
            rec.set_tags({"curation.registered_model": f"models:/{cfg.register_as}/{version}"})


def run() -> None:
    """Run this stage on the ``unlearn`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, UnlearnStageConfig, main)


if __name__ == "__main__":
    run()
