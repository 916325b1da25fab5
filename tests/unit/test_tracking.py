"""RunRecorder against a real sqlite MLflow store; registry round trip; run-context plugin tags."""

from pathlib import Path

import mlflow
import polars as pl
import pytest
import torch

from curation.config.stages import BuildReportConfig
from curation.models.checkpoints import CheckpointInfo, load_checkpoint, save_checkpoint
from curation.tracking import RunRecorder, configure_tracking


def _runs() -> list:
    configure_tracking()
    return mlflow.search_runs(experiment_names=["test"], order_by=["attributes.start_time DESC"],
                              output_format="list")


def test_recorder_logs_params_metrics_artifacts_and_dataset(mlflow_store: Path, monkeypatch) -> None:
    monkeypatch.chdir(mlflow_store)
    cfg = BuildReportConfig()
    frame = pl.DataFrame({"example_id": ["a", "b"], "text": ["x", "y"]})
    (mlflow_store / "note.txt").write_text("hello")
    with RunRecorder("build_report", cfg) as rec:
        rec.log_metrics({"accuracy": 0.5})
        rec.log_artifact(mlflow_store / "note.txt", "notes")
        rec.log_frame(frame, "scores/s.parquet")
        rec.log_dataset(frame, name="train", source="data/train.parquet")
    run = _runs()[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("build_report@")
    assert run.data.params["out"] == "reports/pipeline.html"
    assert run.data.metrics["accuracy"] == 0.5
    assert run.data.tags["curation.stage"] == "build_report"
    assert len(run.data.tags["curation.config_hash"]) == 12
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"notes", "scores", "config.json", "report.html"} <= names  # a summary report when none is logged
    assert run.data.tags["curation.report"] == "summary"
    saved = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/config.json")
    assert saved["config_hash"] == run.data.tags["curation.config_hash"] and saved["config"]["out"] == cfg.out
    assert run.inputs.dataset_inputs[0].dataset.name == "train"
    assert (mlflow_store / "mlflow.db").exists() and (mlflow_store / "mlartifacts").is_dir()
    assert '"accuracy": 0.5' in (mlflow_store / "metrics" / "build_report.json").read_text()


def test_summary_report_never_replaces_a_logged_report(mlflow_store: Path, monkeypatch) -> None:
    monkeypatch.chdir(mlflow_store)
    (mlflow_store / "report.html").write_text("<h1>mine</h1>")
    with RunRecorder("s", BuildReportConfig()) as rec:
        rec.log_artifact(mlflow_store / "report.html")
    run = _runs()[0]
    assert "curation.report" not in run.data.tags
    assert mlflow.artifacts.load_text(f"{run.info.artifact_uri}/report.html") == "<h1>mine</h1>"


def test_failure_marks_run_failed_and_keeps_metrics(mlflow_store: Path, monkeypatch) -> None:
    monkeypatch.chdir(mlflow_store)
    metrics = mlflow_store / "metrics" / "s.json"
    metrics.parent.mkdir()
    metrics.write_text('{"old": 1}')
    with pytest.raises(ValueError), RunRecorder("s", BuildReportConfig(), metrics_path=metrics) as rec:
        rec.log_metrics({"partial": 1.0})
        raise ValueError("boom in stage")
    run = _runs()[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["curation.error"] == "ValueError: boom in stage"
    assert metrics.read_text() == '{"old": 1}'


def test_context_provider_tags_every_run(mlflow_store: Path, monkeypatch) -> None:
    """The mlflow.run_context_provider entry point adds the dvc.lock digest (and git rev inside a repo)."""
    monkeypatch.chdir(mlflow_store)
    (mlflow_store / "dvc.lock").write_text("schema: '2.0'\n")
    with RunRecorder("s", BuildReportConfig()):
        pass
    tags = _runs()[0].data.tags
    assert len(tags["curation.dvc_lock_digest"]) == 16


def test_register_and_fetch_checkpoint(mlflow_store: Path, monkeypatch) -> None:
    from curation.tracking.registry import fetch_checkpoint, parse_model_uri, set_model_version_tags

    monkeypatch.chdir(mlflow_store)
    path = save_checkpoint(mlflow_store / "ckpt.safetensors", {"w": torch.arange(6.0).reshape(2, 3)},
                           CheckpointInfo(adapter="mlp", model_config={}, step=3, learning_rate=0.1))
    from curation.tracking.registry import register_checkpoint

    with RunRecorder("train", BuildReportConfig()):
        v1 = register_checkpoint(path, "m")
        v2 = register_checkpoint(path, "m")
    assert (v1, v2) == ("1", "2")
    local = fetch_checkpoint("models:/m/2", dest=mlflow_store / "dl")
    state, info = load_checkpoint(local)
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3)) and info.learning_rate == 0.1
    set_model_version_tags("models:/m/1", {"curation.verdict": "pass"})
    assert mlflow.MlflowClient().get_model_version("m", "1").tags["curation.verdict"] == "pass"
    assert parse_model_uri("models:/m/2") == ("m", "2")
    assert parse_model_uri("models:/m/latest") == ("m", "2")
    assert load_checkpoint(fetch_checkpoint("models:/m/latest", dest=mlflow_store / "dl2"))[1].step == 3
