"""Stage verify_unlearning: pass/fail verdict on whether the unlearned model forgot the forget request, logged as
an MLflow run (report, evidence tables) and set as tags on the examined model version."""

from curation.io import read_table
from curation.models.references import load_final_model as load_model
from curation.models.registered import registered_uri
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder
from curation.unlearning.config import VerifyUnlearningConfig
from curation.unlearning.loading import same_architecture
from curation.unlearning.publish import record_verification
from curation.unlearning.requests import read_request, split_forget_retain
from curation.unlearning.verify import UnlearningCheck, UnlearningInputs

STAGE = "verify_unlearning"


def main(cfg: VerifyUnlearningConfig) -> None:
    adapter, original = load_model(cfg.original)
    unlearned_adapter, unlearned = load_model(cfg.unlearned)
    same_architecture(cfg.original, adapter, cfg.unlearned, unlearned_adapter)
    reference = None
    if cfg.reference:
        ref_adapter, reference = load_model(cfg.reference)
        same_architecture(cfg.original, adapter, cfg.reference, ref_adapter)
    calibration = []
    for ref in cfg.calibration:
        cal_adapter, model = load_model(ref)
        same_architecture(cfg.original, adapter, ref, cal_adapter)
        calibration.append(model)
    train = read_table(cfg.train_data)
    forget, retain = split_forget_retain(train, read_request(cfg.request, train))
    holdout = read_table(cfg.holdout_data)
    validation = read_table(cfg.validation_data) if cfg.validation_data else holdout
    tag_model = registered_uri(cfg.unlearned) if cfg.tag_model == "auto" else (cfg.tag_model or None)
    with RunRecorder(STAGE, cfg) as rec:
        verification = UnlearningCheck(cfg.check).run(UnlearningInputs(
            adapter=adapter, original=original, unlearned=unlearned, forget=forget, retain=retain,
            holdout=holdout, validation=validation, reference=reference, calibration=calibration,
        ))
        record_verification(rec, verification, cfg.out_dir, tag_model=tag_model,
                            title=f"Unlearning verification: {cfg.unlearned}")
    print(f"unlearning verdict: {verification.verdict_line}\n(verified: {verification.passed}, severity "
          f"{verification.severity:.3g}); report: {cfg.out_dir}/report.html")


def run() -> None:
    """Run this stage on the ``verify_unlearning`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, VerifyUnlearningConfig, main)


if __name__ == "__main__":
    run()
