"""MLflow ``run_context_provider`` plugin: tags every run with git rev, ``dvc.lock`` digest and config hash.

Kept in its own module that imports only the abstract base, so MLflow's plugin loading cannot hit a circular import.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from mlflow.tracking.context.abstract_context import RunContextProvider


class CurationRunContextProvider(RunContextProvider):
    """Adds ``curation.git_rev``, ``curation.dvc_lock_digest`` and ``curation.config_hash`` when known."""

    def in_context(self) -> bool:
        return True

    def tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        try:
            rev = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = ""
        if rev:
            tags["curation.git_rev"] = rev
        lock = Path("dvc.lock")
        if lock.is_file():
            tags["curation.dvc_lock_digest"] = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
        if os.environ.get("CURATION_CONFIG_HASH"):
            tags["curation.config_hash"] = os.environ["CURATION_CONFIG_HASH"]
        return tags
