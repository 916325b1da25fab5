"""The demo pipeline under a real `dvc repro` in a temporary git repo, logging to a real MLflow store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.func.conftest import run

pytestmark = pytest.mark.func


def _stages(root: Path) -> list[str]:
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def test_every_stage_ran_and_logged_a_finished_run(demo_project: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{demo_project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["curation"], output_format="list")
    by_stage = {r.data.tags["curation.stage"]: r for r in runs}
    assert set(_stages(demo_project)) <= set(by_stage), set(_stages(demo_project)) - set(by_stage)
    client = mlflow.MlflowClient()
    for stage, r in by_stage.items():
        assert r.info.status == "FINISHED", stage
        assert r.info.run_name.startswith(f"{stage}@")
        assert r.data.tags.get("curation.git_rev"), "run-context plugin tag missing"
        assert r.data.tags.get("curation.dvc_lock_digest") or stage == "prepare_data"
    for stage, r in by_stage.items():
        names = [a.path for a in client.list_artifacts(r.info.run_id)]
        assert any(n.endswith(".html") for n in names), (stage, names)
    for stage in ("prepare_data", "validate_data", "train_lm", "train_classifier", "score_influence",
                  "detect_label_errors", "verify_unlearning", "test_provenance", "optimize_mixture"):
        assert "curation.report" not in by_stage[stage].data.tags, f"{stage} has a real report, not the summary"
    assert by_stage["prepare_data"].inputs.dataset_inputs, "datasets logged with mlflow.log_input"
    assert by_stage["train_lm"].inputs.dataset_inputs
    report = [a.path for a in client.list_artifacts(by_stage["build_report"].info.run_id)]
    assert "pipeline.html" in report and "plots" in report
    html = (demo_project / "reports" / "pipeline.html").read_text()
    assert "Curation pipeline report" in html and "data:image/png;base64," in html
    lm = by_stage["train_lm"]
    assert lm.data.metrics["final_val_loss"] < 5.55  # below the uniform-byte baseline ln(256)
    assert lm.data.tags["curation.registered_model"].startswith("models:/curation-demo-lm/")
    assert by_stage["train_classifier"].data.metrics["test_accuracy"] > 0.5
    classifier = by_stage["train_classifier"].data.tags["curation.registered_model"]
    name, version = classifier.removeprefix("models:/").split("/")
    tags = client.get_model_version(name, version).tags
    detection = by_stage["detect_label_errors"]
    rate = detection.data.metrics["label_error_rate"]
    assert float(tags["curation.label_errors.rate"]) == pytest.approx(rate, abs=5e-5)  # tag has 4 decimals
    assert tags["curation.label_errors.run_id"] == detection.info.run_id


def test_second_repro_is_a_fast_no_op(demo_project: Path) -> None:
    start = time.monotonic()
    proc = run(["dvc", "repro"], demo_project)
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert "Running stage" not in out, out
    assert "didn't change, skipping" in out
    assert elapsed < 15, f"no-op dvc repro took {elapsed:.1f}s"


def test_dvc_metrics_and_plots(demo_project: Path, tmp_path: Path) -> None:
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], demo_project).stdout)
    flat = json.dumps(metrics)
    assert "test_accuracy" in flat and "final_val_loss" in flat
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], demo_project)
    index = (tmp_path / "plots" / "index.html").read_text()
    assert "train_lm_loss" in index or "curve.csv" in index


def test_status_is_clean_after_repro(demo_project: Path) -> None:
    status = run(["dvc", "status"], demo_project).stdout
    assert "up to date" in status, status
