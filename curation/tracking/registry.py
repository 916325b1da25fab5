"""Model registry: register checkpoints as model versions, fetch them back, tag versions with verdicts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from curation.tracking.env import quiet_telemetry
from curation.tracking.recorder import configure_tracking

quiet_telemetry()
import mlflow
from mlflow import MlflowClient

CHECKPOINT_ARTIFACT_DIR = "checkpoint"


def register_checkpoint(path: str | Path, model_name: str, *, tags: dict[str, str] | None = None) -> str:
    """Log ``path`` into the active run and register it as a new version of ``model_name``; return its version."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_checkpoint needs an active MLflow run (use it inside a RunRecorder)")
    mlflow.log_artifact(str(path), artifact_path=CHECKPOINT_ARTIFACT_DIR)
    client = MlflowClient()
    try:
        client.create_registered_model(model_name)
    except mlflow.exceptions.MlflowException:
        pass  # already registered
    source = f"{run.info.artifact_uri}/{CHECKPOINT_ARTIFACT_DIR}"
    version = client.create_model_version(model_name, source=source, run_id=run.info.run_id, tags=tags or {})
    return str(version.version)


def fetch_checkpoint(uri: str, *, dest: str | Path | None = None) -> Path:
    """Download the checkpoint file behind ``models:/name/version`` (or ``runs:/...``) and return its local path."""
    configure_tracking()
    dest = Path(dest or tempfile.mkdtemp(prefix="curation-ckpt-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.suffix in (".safetensors", ".pt", ".pth", ".bin"))
        if not files:
            raise FileNotFoundError(f"{uri}: no checkpoint file (.safetensors/.pt) in the registered artifacts")
        return files[0]
    return local


def set_model_version_tags(uri: str, tags: dict[str, Any]) -> None:
    """Set ``tags`` on the model version named by ``models:/name/version``."""
    name, version = parse_model_uri(uri)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def parse_model_uri(uri: str) -> tuple[str, str]:
    """``models:/name/version`` -> (name, version); ``models:/name/latest`` and aliases (``models:/name@alias``)
    are resolved to the version they stand for now."""
    if not uri.startswith("models:/"):
        raise ValueError(f"{uri}: not a models:/ URI")
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = rest.rpartition("/")
    if not name or not version:
        raise ValueError(f"{uri}: expected models:/<name>/<version>")
    if version == "latest":
        versions = MlflowClient().search_model_versions(f"name='{name}'")
        if not versions:
            raise ValueError(f"{uri}: model '{name}' has no versions")
        version = str(max(int(v.version) for v in versions))
    return name, version
