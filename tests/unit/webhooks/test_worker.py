"""The webhook job worker on an embedded store: a failing job still tags its model version (status failed, the
FAILED parent run), an unknown version (MLflow's test event) is skipped, and verdict tags come from metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from curation.webhooks import JobWorker, Ledger
from curation.webhooks.worker import job_verdicts

DVC_YAML = """stages:
  bad:
    cmd: python -c "import sys; print('verdict stage broke'); sys.exit(4)"
    always_changed: true
"""


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLFLOW_TRACKING_URI", "CURATION_PARENT_RUN_ID", "CURATION_TRIGGER", "CURATION_PROJECT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    dvc = str(Path(sys.executable).with_name("dvc"))
    for argv in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def test_failed_job_tags_the_version_failed_and_unknown_versions_are_skipped(project: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.create_experiment("models", artifact_location=(project / "mlartifacts").as_uri())
    run = client.create_run(exp)
    client.create_registered_model("m")
    version = client.create_model_version("m", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    ledger = Ledger(project / "webhooks.sqlite")
    ledger.admit("d-1", lambda: ("model_version.created", "m", str(version.version)))
    ledger.admit("d-2", lambda: ("model_version.created", "example_model", "1"))
    worker = JobWorker(ledger, project_dir=project, target="bad")
    statuses = [worker.process(ledger.claim_next()), worker.process(ledger.claim_next())]
    assert statuses == ["failed", "skipped"]
    assert ledger.claim_next() is None

    tags = client.get_model_version("m", str(version.version)).tags
    assert tags["curation.job.status"] == "failed" and tags["curation.job.target"] == "bad"
    parent = client.get_run(tags["curation.job.run_id"])
    assert parent.info.status == "FAILED" and parent.data.tags["trigger"] == "webhook"
    assert "dvc repro bad` exited" in parent.data.tags["curation.error"]
    assert {j.model_uri: j.status for j in ledger.jobs()} == {"models:/m/1": "failed",
                                                             "models:/example_model/1": "skipped"}


def test_verdicts_carry_the_targets_headline_metrics(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "score.json").write_text(json.dumps({"ap": 0.97, "n": 40, "nested": {"x": 1}}))
    tags = job_verdicts(tmp_path, "score", "succeeded", "r1")
    assert tags == {"curation.job.status": "succeeded", "curation.job.target": "score",
                    "curation.job.trigger": "webhook", "curation.job.run_id": "r1",
                    "curation.score.ap": "0.97", "curation.score.n": "40"}
    assert "curation.score.ap" not in job_verdicts(tmp_path, "score", "failed", "r2")
