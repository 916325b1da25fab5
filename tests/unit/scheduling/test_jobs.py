"""Jobs run real `dvc repro` in a small git+DVC project: parent/child MLflow runs, the lock, failures."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

from curation.errors import CurationError
from curation.scheduling import JobFailedError, make_scheduler, run_target
from curation.tracking.jobs import child_runs, job_run

DVC_YAML = """stages:
  slow:
    cmd: python slow_stage.py
    always_changed: true
  nested:
    cmd: python nested_stage.py
    always_changed: true
  bad:
    cmd: python -c "import sys; print('stage bad broke'); sys.exit(3)"
    always_changed: true
  examine:
    cmd: python examine_stage.py
    deps:
      - examine_stage.py
"""
SLOW_STAGE = """import time
with open("started.log", "a") as mark:
    mark.write("start\\n")
with open("executions.log", "a") as out:
    start = time.time()
    time.sleep(2.5)
    out.write(f"{start} {time.time()}\\n")
"""
NESTED_STAGE = """from curation.tracking import RunRecorder
with RunRecorder("nested") as rec:
    rec.log_metrics({"answer": 42})
"""

EXAMINE_STAGE = """from curation.models.registered import examined_model_uri
with open("examined.log", "a") as out:
    out.write(f"{examined_model_uri(['wanted'])}\\n")
"""


@pytest.fixture(scope="module")
def toy_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy_dvc")
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "slow_stage.py").write_text(SLOW_STAGE)
    (root / "nested_stage.py").write_text(NESTED_STAGE)
    (root / "examine_stage.py").write_text(EXAMINE_STAGE)
    dvc = str(Path(sys.executable).with_name("dvc"))
    for argv in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
        subprocess.run(argv, cwd=root, check=True, capture_output=True)
    return root


@pytest.fixture(autouse=True)
def embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs must use the toy project's own mlflow.db, whatever the developer's environment says."""
    for name in ("MLFLOW_TRACKING_URI", "CURATION_PARENT_RUN_ID", "CURATION_TRIGGER", "CURATION_PROJECT_ROOT"):
        monkeypatch.delenv(name, raising=False)


def executions(root: Path) -> list[tuple[float, float]]:
    path = root / "executions.log"
    if not path.exists():
        return []
    return [tuple(map(float, line.split())) for line in path.read_text().splitlines()]


def test_stage_runs_nest_under_the_job_parent_run(toy_project: Path) -> None:
    outcome = run_target("nested", project_dir=toy_project, name="manual-nested", trigger="manual")
    assert outcome.status == "succeeded"
    parent = job_run(outcome.run_id, project_dir=toy_project)
    assert parent["status"] == "FINISHED"
    assert parent["tags"]["trigger"] == "manual" and parent["tags"]["curation.target"] == "nested"
    assert parent["metrics"]["returncode"] == 0
    children = child_runs(outcome.run_id, project_dir=toy_project)
    assert [(c["stage"], c["status"], c["trigger"]) for c in children] == [("nested", "FINISHED", "manual")]
    log_text = Path(outcome.log_path).read_text()
    assert "dvc repro nested" in log_text and "Running stage 'nested'" in log_text


def test_lock_prevents_overlapping_runs(toy_project: Path) -> None:
    results: dict[str, object] = {}

    def job(key: str, wait: float) -> None:
        results[key] = run_target("slow", project_dir=toy_project, name=key, lock_wait_s=wait)

    before = len(executions(toy_project))
    started = toy_project / "started.log"
    marks = len(started.read_text().splitlines()) if started.exists() else 0
    first = threading.Thread(target=job, args=("first", 0.0))
    first.start()
    deadline = time.monotonic() + 90
    while (not started.exists() or len(started.read_text().splitlines()) == marks) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first job's stage is running (so it holds the lock)
    waiting = threading.Thread(target=job, args=("waiting", 120.0))
    waiting.start()
    skipped = run_target("slow", project_dir=toy_project, name="skipped", lock_wait_s=0.0)
    first.join(120)
    waiting.join(120)
    assert skipped.status == "skipped" and skipped.run_id is None
    assert results["first"].status == "succeeded" and results["waiting"].status == "succeeded"
    runs = sorted(executions(toy_project)[before:])
    assert len(runs) == 2, runs
    assert runs[0][1] <= runs[1][0], f"stage executions overlap: {runs}"


def test_failed_job_is_recorded_and_scheduler_carries_on(toy_project: Path) -> None:
    with pytest.raises(JobFailedError, match="exited") as failure:
        run_target("bad", project_dir=toy_project, name="bad-manual")
    failed = job_run(failure.value.run_id, project_dir=toy_project)
    assert failed["status"] == "FAILED" and "exited" in failed["tags"]["curation.error"]

    scheduler = make_scheduler(toy_project)
    events: list = []
    scheduler.add_listener(events.append, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        kwargs = {"project_dir": str(toy_project), "pull": False}
        for target in ("bad", "slow"):
            scheduler.add_job("curation.scheduling.jobs:scheduled_job", "date", id=target,
                              kwargs={"name": target, "target": target, **kwargs})
        deadline = time.monotonic() + 120
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler.running
    finally:
        scheduler.shutdown(wait=True)
    by_job = {e.job_id: e for e in events}
    assert by_job["bad"].code == EVENT_JOB_ERROR and isinstance(by_job["bad"].exception, JobFailedError)
    assert by_job["slow"].code == EVENT_JOB_EXECUTED and by_job["slow"].retval == "succeeded"
    bad_parent = job_run(by_job["bad"].exception.run_id, project_dir=toy_project)
    assert bad_parent["status"] == "FAILED" and bad_parent["tags"]["trigger"] == "schedule"


def test_run_now_cli_reports_the_parent_run(toy_project: Path) -> None:
    from click.testing import CliRunner

    from curation.cli import cli
    from curation.scheduling import add_schedule

    add_schedule(toy_project, "nightly-slow", cron="0 2 * * *", target="slow")
    done = CliRunner().invoke(cli, ["schedule", "run-now", "nightly-slow", "--project", str(toy_project)])
    assert done.exit_code == 0, done.output
    run_id = done.output.split("MLflow run ")[1].split(",")[0]
    parent = job_run(run_id, project_dir=toy_project)
    assert parent["tags"]["trigger"] == "manual" and parent["tags"]["curation.job"] == "nightly-slow"


def test_forced_job_reruns_an_unchanged_stage_for_the_examined_model(toy_project: Path) -> None:
    log = toy_project / "examined.log"
    run_target("examine", project_dir=toy_project, name="first")
    run_target("examine", project_dir=toy_project, name="unchanged")  # inputs unchanged: DVC skips it
    assert log.read_text().splitlines() == ["None"]
    env = {"CURATION_MODEL_URI": "models:/wanted/7"}
    outcome = run_target("examine", project_dir=toy_project, name="v7", trigger="webhook", extra_env=env, force=True)
    assert "dvc repro --force --single-item examine" in Path(outcome.log_path).read_text()
    run_target("examine", project_dir=toy_project, name="other", extra_env={"CURATION_MODEL_URI": "models:/other/1"},
               force=True)
    assert log.read_text().splitlines() == ["None", "models:/wanted/7", "None"]  # other models are not examined
    with pytest.raises(CurationError, match="forced job needs a target stage"):
        run_target("", project_dir=toy_project, force=True)
