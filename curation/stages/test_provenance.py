"""Stage test_provenance: palimpsest query test of each suspect model and observational tests of each suspect text
against our run; report, metrics, tags on model versions."""

from pathlib import Path

import polars as pl

from curation.io import atomic_path, read_table, write_parquet
from curation.models.registered import examined_model_uri
from curation.provenance.config import TestProvenanceConfig
from curation.provenance.observe import observe_files
from curation.provenance.palimpsest import check_positions
from curation.provenance.suspects import (
    SuspectResult,
    binned_by_position,
    query_suspects,
    slug,
    summary_frame,
)
from curation.provenance.verdict import DECISIVE, EVIDENCE, text_verdict
from curation.reports import HTMLReport, line_plot
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.training.outputs import read_positions

STAGE = "test_provenance"


def _simulated(cfg: TestProvenanceConfig) -> str:
    """The report's note on test (b)'s simulated derivation, if any."""
    sim = cfg.observe.simulate_derivation
    if not sim.data:
        return ""
    return (f"; every retrained model first fine-tuned on rows {sim.offset}-{sim.offset + sim.rows - 1} of {sim.data} "
            f"at rate {sim.train.learning_rate}, batch {sim.train.batch_size}, as a derived suspect would have been")


def _observed(report: HTMLReport, cfg: TestProvenanceConfig, observed: pl.DataFrame, rec: RunRecorder) -> None:
    """Observational results into the report and the metrics (``observe.<text>.<method>.<field>``)."""
    report.heading("Observational tests of suspect texts").paragraph(
        "overlap (a): Spearman rho between training position and the suspect text's "
        f"{cfg.observe.span_chars}-character span matches per example; p_value = scipy one-sided, p_rank = "
        "permutation. retrain (b): z of the text's log-likelihood under the last phase retrained in the original "
        f"order against {cfg.observe.n_reshuffles} reshuffles (fraction {cfg.observe.fraction}, statistic "
        f"{cfg.observe.statistic}, control {cfg.observe.control}{_simulated(cfg)}); p_value is the "
        f"'{cfg.observe.report_p}' p-value (normal = spec's 1 - Phi(z), t = Student prediction, rank = exact with "
        "floor 1/(K+1)). Verdicts use the same words as above and need every p-value of a test: test (b) its Student "
        "and its exact rank p.")
    rows = list(observed.iter_rows(named=True))
    verdicts = [text_verdict(r) for r in rows]
    report.table(pl.DataFrame({"text": [r["text_file"] for r in rows], "test": [r["method"] for r in rows],
                               "verdict": [v.statement for v in verdicts]}))
    report.table(observed)
    for row, verdict in zip(rows, verdicts, strict=True):
        figures = {k: row[k] for k in ("statistic", "p_value", "p_normal", "p_t", "p_rank", "p_verdict", "n_tokens")}
        rec.log_metrics({f"observe.{slug(row['text_file'])}.{row['method']}.{k}": v
                         for k, v in (figures | {"verdict_code": float(verdict.code)}).items() if v is not None})


def _write(tmp: Path, cfg: TestProvenanceConfig, results: list[SuspectResult], summary: pl.DataFrame,
           rec: RunRecorder) -> HTMLReport:
    """Per-suspect loss tables and plots into the temporary output folder, the query-test report; metrics, tags."""
    report = HTMLReport("Provenance: palimpsest tests", subtitle=f"run {cfg.run_dir}, reference {cfg.reference}")
    if not results:
        return report
    ensemble = cfg.ensemble_reference and bool(cfg.null_models)
    reference = ("the mean loss of the suspect, the reference model and the null bank" if ensemble
                 else "the reference model's loss")
    report.paragraph("H0: the suspect is independent of our run's random training order. Statistic: Spearman "
                     "rho between each training example's position and (suspect loss - reference loss), the "
                     f"reference loss being {reference}; "
                     "derivation predicts rho < 0. p_value: scipy one-sided; p_permutation: exact, floor "
                     f"1/{cfg.n_permutations + 1}.")
    report.heading("Verdicts").paragraph(
        f"decisive: every p-value <= {DECISIVE:g}; evidence: <= {EVIDENCE:g}; otherwise not shown. When a test is "
        "not decisive, the observed effect says what size would be: examples n = (3.09 / rho)^2 + 1 for the exact "
        "p-value, null models for the bank's.")
    report.table(pl.DataFrame({"suspect": [r.suspect for r in results],
                               "verdict": [r.verdict.statement for r in results]}))
    if cfg.null_models:
        report.paragraph("Null bank: the same statistic for models independent of our run, with the same reference "
                         "and examples. null_z = (mean null rho - rho) / sd; null_p_t: Student prediction p-value; "
                         "null_p_rank: exact if the suspect is one more model like the bank's. The exact p_value "
                         "holds over the randomness of our order; the bank's p-values hold for this one order and "
                         "reference, whose chance correlation with what independent models share moves every rho.")
    report.table(summary)
    for r in results:
        name = slug(r.suspect)
        write_parquet(r.result.frame, tmp / "losses" / f"{name}.parquet")
        x, y = binned_by_position(r.result.frame)
        png = line_plot({name: (x, y)}, tmp / "plots" / f"{name}.png", title=f"{name}: loss vs training position",
                        xlabel="training position", ylabel="suspect - reference loss")
        report.heading(r.suspect).paragraph(r.verdict.statement).key_values(r.result.summary()).image(png)
        rec.log_metrics({f"{name}.{k}": v for k, v in {**r.result.summary(), **r.verdict.summary()}.items()})
        if r.suspect.startswith("models:/"):
            from curation.tracking.registry import set_model_version_tags

            null = {f"curation.provenance.{k}": v for k, v in r.result.summary().items()
                    if k in ("null_z", "null_p_t", "null_p_rank", "n_null_models")}
            set_model_version_tags(r.suspect, {
                "curation.provenance.statistic": r.result.statistic,
                "curation.provenance.p_value": r.result.p_value,
                "curation.provenance.verdict": r.verdict.verdict,
                **null,
                "curation.provenance.n": r.result.n,
                "curation.provenance.run": cfg.run_dir,
                "curation.provenance.mlflow_run": rec.run_id,
            })
    return report


def main(cfg: TestProvenanceConfig) -> None:
    positions = check_positions(read_positions(cfg.run_dir), where=f"{cfg.run_dir}/positions.parquet")
    train = read_table(cfg.train_data, columns=["example_id", "text"])
    out = Path(cfg.out_dir)
    suspects = list(cfg.suspects)
    examined = examined_model_uri(cfg.examine_registered) if cfg.examine_registered else None
    if examined and examined not in suspects:
        suspects.append(examined)  # a webhook job for a new version of a watched model
    with RunRecorder(STAGE, cfg) as rec:
        if examined:
            rec.set_tags({"curation.examined_model": examined})
        results = query_suspects(train, positions, cfg.reference, suspects, null_models=cfg.null_models,
                                 ensemble_reference=cfg.ensemble_reference and bool(cfg.null_models),
                                 n_permutations=cfg.n_permutations,
                                 seed=cfg.seed, batch_size=cfg.batch_size) if suspects else []
        observed = observe_files(list(cfg.suspect_texts), train, positions, cfg.observe) if cfg.suspect_texts else None
        with atomic_path(out, is_dir=True) as tmp:
            if results:
                write_parquet(summary_frame(results), tmp / "results.parquet")
            report = _write(tmp, cfg, results, summary_frame(results) if results else pl.DataFrame(), rec)
            if observed is not None:
                write_parquet(observed, tmp / "observed.parquet")
                _observed(report, cfg, observed, rec)
            report.write(tmp / "report.html")
        rec.log_artifact(out / "report.html")
        for name, dest in (("results.parquet", "scores"), ("observed.parquet", "scores"), ("losses", "scores/losses"),
                           ("plots", "plots")):
            if (out / name).exists():
                rec.log_artifact(out / name, dest)


def run() -> None:
    """Run this stage on the ``test_provenance`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, TestProvenanceConfig, main)


if __name__ == "__main__":
    run()
