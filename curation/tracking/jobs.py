"""Parent MLflow runs for curation jobs (scheduled, webhook-triggered or manual ``dvc repro`` executions).

A job runs ``dvc repro`` in a subprocess; the stage runs it starts nest under the job's parent run because the
job passes ``CURATION_PARENT_RUN_ID`` and ``CURATION_TRIGGER`` in the subprocess environment (see
``RunRecorder``). The parent run is driven through an explicit ``MlflowClient`` rather than the fluent API so that
several jobs can run in threads of one scheduler process without sharing MLflow's active-run state.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from curation.tracking.env import DEFAULT_ARTIFACTS, DEFAULT_DB, quiet_telemetry
from curation.tracking.recorder import DEFAULT_EXPERIMENT, short_git_sha

quiet_telemetry()
import mlflow
from mlflow import MlflowClient

TRIGGERS = ("schedule", "webhook", "manual")


def project_tracking_uri(project_dir: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the embedded store of ``project_dir`` (``<project>/mlflow.db``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(project_dir).resolve() / DEFAULT_DB}"


@dataclass
class ParentRun:
    """Handle on an open parent run: its id, the env to hand to the job's subprocess, and metric/artifact logging."""

    client: MlflowClient
    run_id: str
    experiment_id: str
    trigger: str
    env: dict[str, str] = field(default_factory=dict)
    status: str = "RUNNING"

    def log_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, float(value))

    def set_tags(self, tags: dict[str, object]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value)[:5000])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    @property
    def ui_path(self) -> str:
        return f"#/experiments/{self.experiment_id}/runs/{self.run_id}"


def _experiment_id(client: MlflowClient, name: str, project_dir: Path, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = (project_dir / DEFAULT_ARTIFACTS).as_uri() if uri.startswith("sqlite:") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created concurrently by a stage or another job
        return client.get_experiment_by_name(name).experiment_id


@contextlib.contextmanager
def parent_run(
    name: str,
    *,
    trigger: str,
    project_dir: str | Path = ".",
    tags: dict[str, str] | None = None,
    experiment: str | None = None,
) -> Iterator[ParentRun]:
    """Open the parent run of one job execution; FINISHED on success, FAILED (with ``curation.error``) on error.

    ``trigger`` is one of ``schedule``, ``webhook``, ``manual`` and is tagged as ``trigger``. The yielded
    ``ParentRun.env`` holds the variables a ``dvc repro`` subprocess needs so its stage runs nest under this run
    and write to the same store.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger={trigger!r}: expected one of {', '.join(TRIGGERS)}")
    project = Path(project_dir).resolve()
    uri = project_tracking_uri(project)
    client = MlflowClient(tracking_uri=uri)
    exp_name = experiment or os.environ.get("CURATION_EXPERIMENT", DEFAULT_EXPERIMENT)
    exp_id = _experiment_id(client, exp_name, project, uri)
    base_tags = {"trigger": trigger, "curation.job": name, "curation.git_rev": short_git_sha(project)}
    run = client.create_run(exp_id, run_name=f"job:{name}", tags={**base_tags, **(tags or {})})
    handle = ParentRun(client=client, run_id=run.info.run_id, experiment_id=exp_id, trigger=trigger)
    handle.env = {
        "CURATION_PARENT_RUN_ID": handle.run_id,
        "CURATION_TRIGGER": trigger,
        "CURATION_EXPERIMENT": exp_name,
        "CURATION_PROJECT_ROOT": str(project),
        "MLFLOW_TRACKING_URI": uri,
    }
    started = time.monotonic()
    try:
        yield handle
    except BaseException as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        client.set_tag(handle.run_id, "curation.error", f"{type(exc).__name__}: {message}"[:5000])
        client.log_metric(handle.run_id, "duration_s", round(time.monotonic() - started, 3))
        client.set_terminated(handle.run_id, status="FAILED")
        handle.status = "FAILED"
        raise
    client.log_metric(handle.run_id, "duration_s", round(time.monotonic() - started, 3))
    client.set_terminated(handle.run_id, status="FINISHED")
    handle.status = "FINISHED"


def child_runs(parent_run_id: str, *, project_dir: str | Path = ".") -> list[dict[str, str]]:
    """Runs nested under ``parent_run_id``: run name, status, stage and trigger tags (for reports and tests)."""
    client = MlflowClient(tracking_uri=project_tracking_uri(project_dir))
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    return [
        {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "stage": r.data.tags.get("curation.stage", ""),
            "trigger": r.data.tags.get("trigger", ""),
        }
        for r in runs
    ]


def job_run(run_id: str, *, project_dir: str | Path = ".") -> dict[str, object]:
    """Status, tags and metrics of a job's parent run."""
    run = MlflowClient(tracking_uri=project_tracking_uri(project_dir)).get_run(run_id)
    return {"status": run.info.status, "tags": dict(run.data.tags), "metrics": dict(run.data.metrics),
            "run_name": run.info.run_name}


def model_version_exists(name: str, version: str, *, project_dir: str | Path = ".") -> bool:
    """Whether ``models:/name/version`` is registered in the project's tracking server / store."""
    client = MlflowClient(tracking_uri=project_tracking_uri(project_dir))
    try:
        client.get_model_version(name, str(version))
    except mlflow.exceptions.MlflowException:
        return False
    return True


def tag_model_version(name: str, version: str, tags: dict[str, object], *, project_dir: str | Path = ".") -> None:
    """Set ``tags`` (a job's verdicts) on ``models:/name/version`` in the project's registry."""
    from curation.tracking.registry import set_model_version_tags

    mlflow.set_tracking_uri(project_tracking_uri(project_dir))
    set_model_version_tags(f"models:/{name}/{version}", tags)
