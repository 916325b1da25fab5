"""``RunRecorder``: the one place where DVC outputs and MLflow logging meet."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import polars as pl

from curation.config import config_hash, to_dict
from curation.io.atomic import write_json
from curation.tracking.env import artifact_root, quiet_telemetry, tracking_uri

quiet_telemetry()
import mlflow

log = logging.getLogger(__name__)
DEFAULT_EXPERIMENT = "curation"


def configure_tracking() -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the embedded sqlite store; return the URI."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def ensure_experiment(name: str) -> str:
    """Experiment id of ``name``, created (with artifacts under ``mlartifacts/`` when embedded) if missing."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_root() if tracking_uri().startswith("sqlite:") else None
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created concurrently by another stage
        return mlflow.get_experiment_by_name(name).experiment_id


def short_git_sha(cwd: str | Path = ".") -> str:
    """Short git revision of ``cwd`` or ``nogit``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or "nogit"
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> dotted keys (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class RunRecorder:
    """Context manager around one MLflow run of one stage.

    On success it ends the run FINISHED and writes ``metrics_path`` (for ``dvc metrics``); on an exception it
    tags the run with the error, ends it FAILED and leaves the previous metrics file untouched.
    A scheduled job passes ``CURATION_PARENT_RUN_ID`` so stage runs nest under the job's run.
    """

    def __init__(
        self,
        stage: str,
        config: Any = None,
        *,
        experiment: str | None = None,
        metrics_path: str | Path | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.stage = stage
        self.config = config
        self.experiment = experiment or os.environ.get("CURATION_EXPERIMENT", DEFAULT_EXPERIMENT)
        self.metrics_path = Path(metrics_path) if metrics_path else Path("metrics") / f"{stage}.json"
        self.extra_tags = tags or {}
        self.metrics: dict[str, float] = {}
        self.run: Any = None
        self._started = 0.0
        self._reported = False

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def config_hash(self) -> str:
        """Digest of the stage's resolved config (also tagged on the run and saved beside outputs)."""
        return config_hash(self.config) if self.config is not None else ""

    def __enter__(self) -> Self:
        configure_tracking()
        exp_id = ensure_experiment(self.experiment)
        chash = self.config_hash
        os.environ["CURATION_CONFIG_HASH"] = chash
        tags = {"curation.stage": self.stage, "curation.config_hash": chash, **self.extra_tags}
        parent = os.environ.get("CURATION_PARENT_RUN_ID")
        if os.environ.get("CURATION_TRIGGER"):
            tags["trigger"] = os.environ["CURATION_TRIGGER"]
        self.run = mlflow.start_run(
            experiment_id=exp_id,
            run_name=f"{self.stage}@{short_git_sha()}",
            tags=tags,
            parent_run_id=parent or None,
            nested=bool(parent),
        )
        self._started = time.monotonic()
        if self.config is not None:
            params = flatten(to_dict(self.config))
            mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
            mlflow.log_dict({"config_hash": chash, "config": to_dict(self.config)}, "config.json")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            message = str(exc).splitlines()[0] if str(exc) else exc_type.__name__
            mlflow.set_tag("curation.error", f"{exc_type.__name__}: {message}"[:5000])
            mlflow.end_run(status="FAILED")
            return
        self.log_metrics({"duration_s": round(time.monotonic() - self._started, 3)})
        if not self._reported:
            self._log_summary_report()
        write_json(self.metrics, self.metrics_path)
        mlflow.end_run(status="FINISHED")

    def log_metrics(self, metrics: dict[str, float], *, step: int | None = None) -> None:
        """Log headline metrics (also written to the DVC metrics file when ``step`` is None)."""
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        mlflow.log_metrics(clean, step=step)
        if step is None:
            self.metrics.update(clean)

    def log_curve(self, frame: pl.DataFrame, *, step_column: str = "step") -> None:
        """Log every numeric column of a curve frame as a stepped metric."""
        for row in frame.iter_rows(named=True):
            values = {k: v for k, v in row.items() if k != step_column and v is not None}
            if values:
                mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=int(row[step_column]))

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a folder."""
        path = Path(path)
        if path.suffix == ".html" or (path.is_dir() and any(path.rglob("*.html"))):
            self._reported = True
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        mlflow.log_text(text, artifact_file)

    def log_report(self, html: str, artifact_file: str = "report.html") -> None:
        """Log a rendered, self-contained HTML report (``HTMLReport.render()``) as the run's report."""
        mlflow.log_text(html, artifact_file)
        self._reported = True

    def _log_summary_report(self) -> None:
        """Every stage run gets a report: stages that log none get headline metrics, config and artifacts.

        Never replaces a report the stage logged itself (through ``log_report``, ``log_artifact`` or a text).
        """
        from curation.reports.html import HTMLReport

        report = HTMLReport(f"{self.stage}: summary", subtitle=f"run {self.run_id}")
        report.heading("Headline metrics").key_values(self.metrics)
        if self.config is not None:
            report.heading("Configuration").key_values(flatten(to_dict(self.config)))
        artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(self.run_id)]
        if any(a.endswith(".html") for a in artifacts):
            return
        report.heading("Artifacts").key_values({"logged": ", ".join(artifacts) or "(none)"})
        mlflow.set_tag("curation.report", "summary")
        self.log_report(report.render())

    def log_dict(self, obj: dict, artifact_file: str) -> None:
        mlflow.log_dict(obj, artifact_file)

    def log_frame(self, frame: pl.DataFrame, artifact_file: str) -> None:
        """Log a polars frame as a Parquet artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            frame.write_parquet(path)
            parent = str(Path(artifact_file).parent)
            mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)

    def log_dataset(self, frame: pl.DataFrame, *, name: str, source: str, context: str = "training") -> None:
        """``mlflow.log_input`` of a polars dataset (schema, digest and source; not the rows)."""
        with warnings.catch_warnings():  # mlflow warns that a local path matches two equivalent source types
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_polars(frame, source=source, name=name)
        mlflow.log_input(dataset, context=context)

    def log_dataset_files(self, paths: list[str | Path], *, name: str, source: str, digest: str,
                          context: str = "training") -> None:
        """``mlflow.log_input`` of a dataset kept as Parquet files, without loading its rows (a pool too large for
        memory): the schema comes from the first file's footer, the digest from the caller."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.polars_dataset import infer_schema

        schema = infer_schema(pl.read_parquet(paths[0], n_rows=0))
        with warnings.catch_warnings():  # mlflow warns that a local path matches two equivalent source types
            warnings.simplefilter("ignore", UserWarning)
            dataset = MetaDataset(resolve_dataset_source(source), name=name, digest=digest[:36], schema=schema)
        mlflow.log_input(dataset, context=context)


def latest_stage_runs(experiment: str | None = None) -> list[dict[str, str]]:
    """The most recent run of each stage in the experiment: stage, run name, status, run id, UI path."""
    configure_tracking()
    name = experiment or os.environ.get("CURATION_EXPERIMENT", DEFAULT_EXPERIMENT)
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        return []
    runs = mlflow.search_runs(
        experiment_ids=[exp.experiment_id], order_by=["attributes.start_time DESC"], output_format="list"
    )
    latest: dict[str, dict[str, str]] = {}
    for run in runs:
        stage = run.data.tags.get("curation.stage")
        if stage and stage not in latest:
            latest[stage] = {
                "stage": stage,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "run_id": run.info.run_id,
                "ui_path": f"#/experiments/{exp.experiment_id}/runs/{run.info.run_id}",
            }
    return list(latest.values())
