"""Stage forget_request: the demo's deletion request, a seeded sample of training ids."""

from curation.io import read_table, write_parquet
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.unlearning.config import ForgetRequestConfig
from curation.unlearning.requests import sample_request

STAGE = "forget_request"


def main(cfg: ForgetRequestConfig) -> None:
    with RunRecorder(STAGE, cfg) as rec:
        request = sample_request(read_table(cfg.train_data, columns=["example_id"]), cfg.size, seed=cfg.seed)
        write_parquet(request, cfg.out)
        rec.log_artifact(cfg.out, "request")
        rec.log_metrics({"forget_examples": request.height})


def run() -> None:
    """Run this stage on the ``forget_request`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, ForgetRequestConfig, main)


if __name__ == "__main__":
    run()
