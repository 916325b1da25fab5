"""Stage test_provenance: palimpsest query test of each suspect against our run; report, tags on model versions."""

from pathlib import Path

import polars as pl

from curation.io import atomic_path, read_table, write_parquet
from curation.provenance.config import TestProvenanceConfig
from curation.provenance.palimpsest import check_positions
from curation.provenance.suspects import (
    SuspectResult,
    binned_by_position,
    query_suspects,
    slug,
    summary_frame,
)
from curation.reports import HTMLReport, line_plot
from curation.tracking import RunRecorder
from curation.training.outputs import read_positions
from pipelines._stage import run_stage

STAGE = "test_provenance"


def _write(tmp: Path, cfg: TestProvenanceConfig, results: list[SuspectResult], summary: pl.DataFrame,
           rec: RunRecorder) -> None:
    """Report, per-suspect loss tables and plots into the temporary output folder; metrics and tags."""
    report = HTMLReport("Provenance: palimpsest query test", subtitle=f"run {cfg.run_dir}, reference {cfg.reference}")
    report.paragraph("H0: the suspect is independent of our run's random training order. Statistic: Spearman "
                     "rho between each training example's position and (suspect loss - reference loss); "
                     "derivation predicts rho < 0. p_value: scipy one-sided; p_permutation: exact, floor "
                     f"1/{cfg.n_permutations + 1}.")
    report.table(summary)
    for r in results:
        name = slug(r.suspect)
        write_parquet(r.result.frame, tmp / "losses" / f"{name}.parquet")
        x, y = binned_by_position(r.result.frame)
        png = line_plot({name: (x, y)}, tmp / "plots" / f"{name}.png", title=f"{name}: loss vs training position",
                        xlabel="training position", ylabel="suspect - reference loss")
        report.heading(r.suspect).key_values(r.result.summary()).image(png)
        rec.log_metrics({f"{name}.{k}": v for k, v in r.result.summary().items()})
        if r.suspect.startswith("models:/"):
            from curation.tracking.registry import set_model_version_tags

            set_model_version_tags(r.suspect, {
                "curation.provenance.statistic": r.result.statistic,
                "curation.provenance.p_value": r.result.p_value,
                "curation.provenance.n": r.result.n,
                "curation.provenance.run": cfg.run_dir,
                "curation.provenance.mlflow_run": rec.run_id,
            })
    report.write(tmp / "report.html")


def main(cfg: TestProvenanceConfig) -> None:
    positions = check_positions(read_positions(cfg.run_dir), where=f"{cfg.run_dir}/positions.parquet")
    train = read_table(cfg.train_data, columns=["example_id", "text"])
    out = Path(cfg.out_dir)
    with RunRecorder(STAGE, cfg) as rec:
        results = query_suspects(train, positions, cfg.reference, list(cfg.suspects),
                                 n_permutations=cfg.n_permutations, seed=cfg.seed, batch_size=cfg.batch_size)
        summary = summary_frame(results)
        with atomic_path(out, is_dir=True) as tmp:
            write_parquet(summary, tmp / "results.parquet")
            _write(tmp, cfg, results, summary, rec)
        rec.log_artifact(out / "report.html")
        rec.log_artifact(out / "results.parquet", "scores")
        rec.log_artifact(out / "losses", "scores/losses")
        rec.log_artifact(out / "plots", "plots")


if __name__ == "__main__":
    run_stage(STAGE, TestProvenanceConfig, main)
