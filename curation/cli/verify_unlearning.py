"""``curate verify-unlearning``: pass/fail verdict on whether a model forgot a forget request."""

from __future__ import annotations

import click


@click.command("verify-unlearning")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training table of the original model (needs example_id).")
@click.option("--request", "request_path", required=True, type=click.Path(dir_okay=False),
              help="Forget request: table with the example_id column that should be forgotten.")
@click.option("--holdout", "holdout_path", required=True, type=click.Path(dir_okay=False),
              help="Rows never trained on, same distribution (the MIA's non-members).")
@click.option("--validation", "validation_path", default=None, type=click.Path(dir_okay=False),
              help="Rows for the utility check (default: the holdout table).")
@click.option("--original", required=True, help="Model before unlearning (checkpoint, folder or models:/ URI).")
@click.option("--unlearned", required=True, help="Model to verify (checkpoint or models:/ URI).")
@click.option("--reference", default="", help="Model retrained without the forget set (recommended).")
@click.option("--calibration", multiple=True,
              help="Further model retrained without the forget set (another seed); repeat the option. With the "
                   "reference they calibrate the membership attack (log-likelihood minus theirs).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML mapping of thresholds (keys of UnlearningCheckConfig).")
@click.option("--out", "out_dir", default="artifacts/verify_unlearning", show_default=True,
              help="Folder for verdict.json, criteria/scores tables and report.html.")
@click.option("--tag-model", default="auto", show_default=True,
              help="models:/ URI to tag with the verdict; auto = the version registered beside --unlearned; "
                   "empty = none.")
def verify_unlearning_cmd(train_path: str, request_path: str, holdout_path: str, validation_path: str | None,
                          original: str, unlearned: str, reference: str, calibration: tuple[str, ...],
                          config_path: str | None, out_dir: str, tag_model: str) -> None:
    """Check that UNLEARNED forgot the REQUEST rows: MIA AUC and PrivLeak against the retrained reference, the
    reference-calibrated MIA AUC against chance, KS forget quality, utility on retain/validation rows and REMIND.
    Logs an MLflow run with the report, tags the examined model version, prints the verdict ("forgotten", "not
    forgotten" or "inconclusive: why, what request size would do") and exits 1 when the model is NOT verified.

    \b
    Example:
      curate verify-unlearning --train data/digits/train.parquet --request data/forget/request.parquet \\
        --holdout data/digits/test.parquet --original checkpoints/classifier \\
        --unlearned checkpoints/unlearned/model.safetensors \\
        --reference checkpoints/unlearn_retrain/model.safetensors \\
        --calibration checkpoints/unlearn_retrain/calibration/seed-1.safetensors
    """
    import sys
    from pathlib import Path

    from curation.config import load, read_yaml_mapping
    from curation.io import read_table
    from curation.models.references import load_final_model as load_model
    from curation.models.registered import registered_uri
    from curation.tracking import RunRecorder
    from curation.unlearning.loading import same_architecture
    from curation.unlearning.publish import record_verification
    from curation.unlearning.requests import read_request, split_forget_retain
    from curation.unlearning.verify import UnlearningCheck, UnlearningCheckConfig, UnlearningInputs

    mapping = read_yaml_mapping(config_path)
    cfg = load(UnlearningCheckConfig, mapping, where=config_path or "thresholds")
    adapter, original_model = load_model(original)
    unlearned_adapter, unlearned_model = load_model(unlearned)
    same_architecture(original, adapter, unlearned, unlearned_adapter)
    reference_model = None
    if reference:
        ref_adapter, reference_model = load_model(reference)
        same_architecture(original, adapter, reference, ref_adapter)
    calibration_models = []
    for ref in calibration:
        cal_adapter, cal_model = load_model(ref)
        same_architecture(original, adapter, ref, cal_adapter)
        calibration_models.append(cal_model)
    train = read_table(train_path)
    forget, retain = split_forget_retain(train, read_request(request_path, train))
    holdout = read_table(holdout_path)
    validation = read_table(validation_path) if validation_path else holdout
    uri = registered_uri(unlearned) if tag_model == "auto" else (tag_model or None)
    with RunRecorder("verify_unlearning", cfg, metrics_path=Path(out_dir) / "metrics.json") as rec:
        verification = UnlearningCheck(cfg).run(UnlearningInputs(
            adapter=adapter, original=original_model, unlearned=unlearned_model, forget=forget, retain=retain,
            holdout=holdout, validation=validation, reference=reference_model, calibration=calibration_models,
        ))
        record_verification(rec, verification, out_dir, tag_model=uri, title=f"Unlearning verification: {unlearned}")
    click.echo(verification.criteria.select("criterion", "value", "threshold", "passed"))
    click.echo(f"unlearning verdict: {verification.verdict_line}")
    click.echo(f"verified: {verification.passed} (severity {verification.severity:.3g}); "
               f"report: {out_dir}/report.html" + (f"; tagged {uri}" if uri else ""))
    if not verification.passed:
        sys.exit(1)
