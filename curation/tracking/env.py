"""Environment defaults applied before MLflow is imported: telemetry off, embedded sqlite store."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def quiet_telemetry() -> None:
    """Turn off MLflow and DVC usage telemetry for this process and its children."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def project_root() -> Path:
    """The folder that holds the embedded store: ``CURATION_PROJECT_ROOT`` or the current directory."""
    return Path(os.environ.get("CURATION_PROJECT_ROOT", ".")).resolve()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / DEFAULT_DB}"


def artifact_root() -> str:
    """Artifact location for experiments created on the embedded store."""
    return (project_root() / DEFAULT_ARTIFACTS).as_uri()
