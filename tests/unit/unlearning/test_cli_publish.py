"""`curate unlearn` / `curate verify-unlearning` end to end on a temporary MLflow store: checkpoint written,
verdict logged as a run with report, tags set on the examined model version, exit status reflects the verdict."""

from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from curation.cli import cli, main
from curation.models.base import adapter_model_config
from curation.models.checkpoints import CheckpointInfo, load_checkpoint, save_checkpoint
from curation.models.registered import write_registered
from curation.tracking import RunRecorder
from curation.tracking.registry import register_checkpoint


def _save(setting, model, path: Path) -> Path:
    info = CheckpointInfo(adapter="mlp", model_config=adapter_model_config(setting.adapter), step=1,
                          learning_rate=1e-3)
    return save_checkpoint(path, model.state_dict(), info)


@pytest.fixture
def files(setting, mlflow_store: Path, monkeypatch) -> dict[str, Path]:
    monkeypatch.chdir(mlflow_store)
    paths = {"train": mlflow_store / "train.parquet", "request": mlflow_store / "request.parquet",
             "holdout": mlflow_store / "holdout.parquet", "validation": mlflow_store / "validation.parquet"}
    setting.train.write_parquet(paths["train"])
    setting.forget.select("example_id").write_parquet(paths["request"])
    setting.holdout.write_parquet(paths["holdout"])
    setting.validation.write_parquet(paths["validation"])
    paths["original"] = _save(setting, setting.original, mlflow_store / "ckpt" / "original.safetensors")
    paths["reference"] = _save(setting, setting.reference, mlflow_store / "ref" / "model.safetensors")
    paths["calibration"] = _save(setting, setting.retrained, mlflow_store / "ref" / "calibration.safetensors")
    return paths


def _verify(files: dict[str, Path], unlearned: Path, out: Path):
    args = ["verify-unlearning", "--train", str(files["train"]), "--request", str(files["request"]),
            "--holdout", str(files["holdout"]), "--validation", str(files["validation"]),
            "--original", str(files["original"]), "--unlearned", str(unlearned),
            "--reference", str(files["reference"]), "--calibration", str(files["calibration"]), "--out", str(out)]
    return CliRunner().invoke(cli, args)


def test_unverified_model_exits_1_and_its_version_is_tagged(files, mlflow_store: Path) -> None:
    # the "unlearned" model is the original itself, registered as a model version
    with RunRecorder("register", None):
        version = register_checkpoint(files["original"], "demo-unlearned")
    write_registered(files["original"], f"models:/demo-unlearned/{version}")
    result = _verify(files, files["original"], mlflow_store / "out")
    assert result.exit_code == 1, result.output
    assert "verified: False" in result.output and "tagged models:/demo-unlearned/1" in result.output
    assert "unlearning verdict: not forgotten: fails " in result.output
    tags = mlflow.MlflowClient().get_model_version("demo-unlearned", version).tags
    assert tags["unlearning.verified"] == "false" and "mia_auc_gap_loss" in tags["unlearning.failed_criteria"]
    assert "mia_auc_calibrated_gap" in tags["unlearning.failed_criteria"]
    assert tags["unlearning.verdict"] == "not forgotten"
    run = mlflow.search_runs(experiment_names=["test"], filter_string="tags.`curation.stage` = 'verify_unlearning'",
                             output_format="list")[0]
    assert run.info.status == "FINISHED" and run.data.tags["unlearning.verified"] == "false"
    assert run.data.metrics["verified"] == 0.0 and run.data.metrics["verdict_code"] == 0.0
    assert run.data.metrics["calibration_models_original"] == 2.0  # the reference and one calibration retrain
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"report.html", "verdict.json", "criteria.parquet", "plots", "scores"} <= names
    html = (mlflow_store / "out" / "report.html").read_text()
    assert "Verdict" in html and "data:image/png;base64," in html


def test_unlearn_cli_retrain_then_verify_passes(files, mlflow_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "op.yaml"
    config.write_text("train: {epochs: 150, batch_size: 32, optimizer: adamw, learning_rate: 0.003, "
                      "schedule: constant, n_checkpoints: 1, eval_every: 1000000, seed: 7}\n")
    out = mlflow_store / "unl" / "retrained.safetensors"
    result = CliRunner().invoke(cli, ["unlearn", "--train", str(files["train"]), "--request", str(files["request"]),
                                      "--model", str(files["original"]), "--method", "retrain",
                                      "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out)[1].extra["unlearning_method"] == "retrain"
    verdict = _verify(files, out, mlflow_store / "out2")
    assert verdict.exit_code == 0, verdict.output
    assert "verified: True" in verdict.output and "unlearning verdict: forgotten: passes all" in verdict.output


def test_bad_request_is_a_one_line_error(files, mlflow_store: Path, monkeypatch, capsys) -> None:
    bad = mlflow_store / "bad.csv"
    bad.write_text("example_id\nnot-a-row\n")
    monkeypatch.setattr("sys.argv", ["curate", "unlearn", "--train", str(files["train"]), "--request", str(bad),
                                     "--model", str(files["original"]), "--out", str(mlflow_store / "x.safetensors")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: row 1: example_id 'not-a-row' is not in the training table"
