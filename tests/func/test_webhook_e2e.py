"""End to end: registering a model version on a real MLflow server triggers one curation job that tags it.

The MLflow server (``--workers 1``, webhook settings and a fixed Fernet key) is the session's shared demo server
from test_browser_ui.py. The receiver and its job worker run in this process; the job runs real ``dvc repro`` in
a small git+DVC project whose stage logs through ``RunRecorder`` to that server.
"""

from __future__ import annotations

import importlib
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from curation.cli import cli
from curation.webhooks import JobWorker, Ledger, WebhookReceiver

pytestmark = pytest.mark.func
SECRET = "e2e-webhook-secret-0123456789"
EXPERIMENT = "webhook-e2e"
DVC_YAML = """stages:
  verdict:
    cmd: python verdict_stage.py
    always_changed: true
    metrics:
      - metrics/verdict.json:
          cache: false
"""
VERDICT_STAGE = """import os
from curation.tracking import RunRecorder
with RunRecorder("verdict") as rec:
    rec.set_tags({"examined": os.environ["CURATION_MODEL_URI"]})
    rec.log_metrics({"label_error_rate": 0.125})
"""


def _browser_test_module() -> ModuleType:
    """test_browser_ui as pytest imported it: its module name depends on the tests/ package layout, and only
    that module object holds the session's server."""
    path = str(Path(__file__).with_name("test_browser_ui.py"))
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == path:
            return module
    return importlib.import_module("tests.func.test_browser_ui")


@pytest.fixture(scope="session")
def demo_server(demo_project: Path) -> object:
    return _browser_test_module().shared_demo_server(demo_project)  # one MLflow server per test session


@pytest.fixture()
def job_project(tmp_path: Path) -> Path:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "verdict_stage.py").write_text(VERDICT_STAGE)
    dvc = str(Path(sys.executable).with_name("dvc"))
    for argv in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def test_new_model_version_triggers_one_job_that_tags_it(
    demo_server: object, job_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", demo_server.url)
    monkeypatch.setenv("CURATION_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CURATION_EXPERIMENT", EXPERIMENT)  # keep the demo's "curation" experiment as dvc left it
    for name in ("CURATION_PARENT_RUN_ID", "CURATION_TRIGGER", "CURATION_PROJECT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    ledger = Ledger(job_project / "webhooks.sqlite")
    worker = JobWorker(ledger, project_dir=job_project, target="verdict", poll_s=1.0).start()
    receiver = WebhookReceiver(secret=SECRET, ledger=ledger, port=0, on_queued=worker.wake).start()
    try:
        installed = CliRunner().invoke(cli, ["hooks", "install", "--url", receiver.url + "/", "--name",
                                             "curation-e2e", "--server", demo_server.url, "--test"])
        assert installed.exit_code == 0, installed.output
        assert "created" in installed.output and "test event: delivered (HTTP 202)" in installed.output

        client = MlflowClient(tracking_uri=demo_server.url)
        model = f"curation-e2e-{uuid.uuid4().hex[:8]}"  # fresh, so a reused store cannot pre-empt the job
        found = client.get_experiment_by_name(EXPERIMENT)
        exp = found.experiment_id if found else client.create_experiment(EXPERIMENT)
        run = client.create_run(exp, run_name="e2e-model")
        weights = job_project / "weights.txt"
        weights.write_text("not a real model")
        client.log_artifact(run.info.run_id, str(weights), artifact_path="model")
        client.set_terminated(run.info.run_id)
        client.create_registered_model(model)
        version = client.create_model_version(model, source=f"{run.info.artifact_uri}/model",
                                              run_id=run.info.run_id).version
        client.set_registered_model_alias(model, "candidate", version)  # a second event

        deadline = time.monotonic() + 240
        tags: dict[str, str] = {}
        while time.monotonic() < deadline:
            tags = client.get_model_version(model, version).tags
            if "curation.job.status" in tags and _deliveries(ledger) >= 3:
                break
            time.sleep(1.0)
    finally:
        receiver.stop()
        worker.stop(timeout=120)

    assert tags.get("curation.job.status") == "succeeded", (tags, ledger.jobs())
    assert tags["curation.job.trigger"] == "webhook" and tags["curation.job.target"] == "verdict"
    assert tags["curation.verdict.label_error_rate"] == "0.125"
    jobs = {j.model_uri: j.status for j in ledger.jobs()}
    # one job for the new version (despite two events); MLflow's test event names a model that does not exist
    assert jobs == {f"models:/{model}/{version}": "succeeded", "models:/example_model/1": "skipped"}
    assert _deliveries(ledger) >= 3  # test event + model_version.created + model_version_alias.created

    parent = client.get_run(tags["curation.job.run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["trigger"] == "webhook"
    assert parent.data.tags["curation.model_uri"] == f"models:/{model}/{version}"
    [child] = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert child.data.tags["curation.stage"] == "verdict" and child.data.tags["trigger"] == "webhook"
    assert child.data.tags["examined"] == f"models:/{model}/{version}"
    assert child.data.metrics["label_error_rate"] == 0.125


def _deliveries(ledger: Ledger) -> int:
    with sqlite3.connect(ledger.path) as conn:
        return conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
