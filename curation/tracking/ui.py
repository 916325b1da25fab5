"""The command that serves the MLflow UI over the same store the stages write to."""

from __future__ import annotations

import sys

from curation.tracking.env import artifact_root, tracking_uri


def ui_command(*, host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> list[str]:
    """``mlflow server`` argv for the configured store (one worker: the UI is for people, not load)."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", tracking_uri(),
        "--default-artifact-root", artifact_root(),
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]
