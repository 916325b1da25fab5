"""Stage select_data: score the pool against a target with a registered selection scorer (DSIR by default), keep
a budgeted set with the Selector, and write the filtered pool, the decision, the manifest and the
``not_selected`` issue table (curation.selection.run); the pool and the kept rows are logged to the stage's MLflow
run as its input and output datasets, with a report of the selection."""

import hashlib
from pathlib import Path

from curation.config.stages import SelectDataConfig
from curation.io import read_table
from curation.selection.report import record_selection
from curation.selection.run import run_selection
from curation.selection.text_shards import source_files
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "select_data"


def main(cfg: SelectDataConfig) -> None:
    out, report_dir = Path(cfg.out_dir), Path(cfg.report_dir)
    with RunRecorder(STAGE, cfg) as rec:
        result = run_selection(cfg.pool, cfg.target, out, scorer={"name": cfg.scorer, "options": cfg.options},
                               selector=cfg.selector, target_filter=cfg.target_filter,
                               kl_reduction=cfg.kl_reduction)
        manifest, selection = result.manifest, result.selection
        digests = manifest["source_digest"]  # one per shard file
        digest = digests if isinstance(digests, str) else hashlib.sha256("".join(digests).encode()).hexdigest()
        rec.log_dataset_files(source_files(cfg.pool), name="pool", source=cfg.pool, context="input",
                              digest=digest[:16])
        rec.log_dataset(read_table(cfg.target), name="target", source=cfg.target, context="target")
        record_selection(rec, out, report_dir, title=f"Data selection: {cfg.scorer}",
                         subtitle=f"{cfg.pool} towards {cfg.target}", manifest=manifest, selection=selection,
                         headline={k: manifest[k] for k in ("rows_in", "kept", "dropped", "kl_reduction")
                                   if k in manifest})


def run() -> None:
    """Run this stage on the ``select_data`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, SelectDataConfig, main)


if __name__ == "__main__":
    run()
