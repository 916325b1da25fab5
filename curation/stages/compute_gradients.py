"""Stage compute_gradients: per-example gradient features of the demo LM (train sample + validation queries)
and of the digits classifier (all training rows), in resumable stores (an interrupted run picks up where it
stopped)."""

import logging
import shutil
import time
from pathlib import Path

from curation.errors import StoreMismatchError
from curation.gradients.config import ComputeGradientsConfig
from curation.stages import _influence
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "compute_gradients"
log = logging.getLogger(STAGE)


def main(cfg: ComputeGradientsConfig) -> None:
    with RunRecorder(STAGE, cfg) as rec:
        for name, job, queries in (("lm", cfg.lm, True), ("classifier", cfg.classifier, False)):
            start = time.monotonic()
            ctx = _influence.job_context(job)
            try:
                _influence.tracin(job, cfg.store, name).prepare(ctx, queries=queries)
            except StoreMismatchError as exc:  # persisted features of other checkpoints/settings: start over
                log.warning("%s; recomputing %s", exc, name)
                shutil.rmtree(Path(cfg.store) / name)
                _influence.tracin(job, cfg.store, name).prepare(ctx, queries=queries)
            seconds = time.monotonic() - start
            _influence.prune_stores(Path(cfg.store) / name, ctx, queries=queries)
            rec.log_metrics({
                f"{name}_train_rows": ctx.train.height,
                f"{name}_query_rows": ctx.queries.height if queries else 0,
                f"{name}_checkpoints": len(ctx.checkpoints),
                f"{name}_seconds": seconds,
                f"{name}_gradients_per_s":
                    (ctx.train.height + (ctx.queries.height if queries else 0)) * len(ctx.checkpoints) / seconds,
            })
        for meta in sorted(Path(cfg.store).glob("*/*/metadata.json")):
            rec.log_artifact(meta, f"gradients/{meta.parent.parent.name}/{meta.parent.name}")


def run() -> None:
    """Run this stage on the ``compute_gradients`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, ComputeGradientsConfig, main)


if __name__ == "__main__":
    run()
