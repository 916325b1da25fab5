"""Model registry: register checkpoints as model versions, fetch them back, tag versions with verdicts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from curation.errors import CurationError
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


def fetch_artifacts(uri: str, *, dest: str | Path | None = None) -> Path:
    """Download what ``models:/name/version`` (``/latest``, ``@alias``) or ``runs:/run_id/path`` points to and
    return the local file or folder; an unknown model, version, alias or run is one ``CurationError`` line."""
    configure_tracking()
    dest = Path(dest or tempfile.mkdtemp(prefix="curation-ckpt-"))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CurationError(f"{uri}: cannot fetch from the MLflow store at {mlflow.get_tracking_uri()} ({first})") from None


def fetch_checkpoint(uri: str, *, dest: str | Path | None = None) -> Path:
    """The final checkpoint file behind a ``models:/`` or ``runs:/`` URI (downloaded)."""
    from curation.models.references import resolve_checkpoint

    return resolve_checkpoint(fetch_artifacts(uri, dest=dest))


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


TREE_MODEL_ARTIFACT = "tree_model"
TREE_SIDECAR_KEY = "curation_tree_model"


def log_tree_model(booster: Any, sidecar: dict[str, Any], *, register_as: str | None = None) -> str | None:
    """Log a LightGBM booster into the active run with MLflow's LightGBM flavour (LightGBM's text model format,
    not a pickle), the table encoding in the model's metadata; register it as a new version of ``register_as``
    when given and return that version."""
    import lightgbm
    import mlflow.lightgbm

    if mlflow.active_run() is None:
        raise RuntimeError("log_tree_model needs an active MLflow run (use it inside a RunRecorder)")
    info = mlflow.lightgbm.log_model(booster, name=TREE_MODEL_ARTIFACT, metadata={TREE_SIDECAR_KEY: sidecar},
                                     registered_model_name=register_as,
                                     pip_requirements=[f"lightgbm=={lightgbm.__version__}"])
    return str(info.registered_model_version) if register_as else None


def fetch_tree_model(uri: str) -> tuple[Any, dict[str, Any]]:
    """``(lightgbm.Booster, sidecar)`` of a tree model logged by ``log_tree_model`` (``models:/`` or ``runs:/``)."""
    import mlflow.lightgbm

    configure_tracking()
    try:
        booster = mlflow.lightgbm.load_model(uri)
        metadata = mlflow.models.get_model_info(uri).metadata or {}
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CurationError(f"{uri}: cannot load a LightGBM model from the MLflow store ({first})") from None
    if TREE_SIDECAR_KEY not in metadata:
        raise CurationError(f"{uri}: LightGBM model without curation table encoding (log it with log_tree_model)")
    return booster, metadata[TREE_SIDECAR_KEY]
