"""A session-wide demo project: the repository's files copied into a temporary git repo, `dvc repro` run once
with smaller params (same stages, less data and fewer steps) on a fresh embedded MLflow store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# Smaller than the demo so the functional tests fit CI; keys must exist in params.yaml.
FAST_PARAMS = {
    ("prepare_data", "corpus", "max_passages_per_domain"): 150,
    ("train_lm", "train", "epochs"): 0.5,
    ("train_lm", "train", "eval_every"): 5,
    ("train_classifier", "train", "epochs"): 4.0,
    ("provenance_suspects", "null_models"): 2,
    ("test_provenance", "observe", "simulate_derivation", "offset"): 0,  # the small corpus has fewer other rows
    ("test_provenance", "observe", "simulate_derivation", "rows"): 16,
    ("select_targeted", "targets_per_task"): 2,
    ("refresh_predictor", "holdout"): 12,
    ("refresh_predictor", "targets_per_task"): 2,
    ("refresh_predictor", "options", "features"): "text",  # no pool-wide gradient pass: the stage's plumbing only
}


def project_env(root: Path) -> dict[str, str]:
    """Environment for running dvc/stages in ``root``: venv first on PATH, embedded store, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CURATION_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1",
        "CURATION_LOG_LEVEL": "WARNING", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    })
    return env


def run(cmd: list[str], cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def copy_project(dest: Path) -> None:
    """Copy tracked and untracked-but-not-ignored files (the working tree as a clean clone would see it)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def shrink_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    for keys, value in FAST_PARAMS.items():
        node = params
        for key in keys[:-1]:
            node = node[key]
        assert keys[-1] in node, keys
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a temporary git+DVC repo in which `dvc repro` has completed."""
    root = tmp_path_factory.mktemp("demo")
    copy_project(root)
    for stale in ("mlflow.db", "mlartifacts", "metrics", "reports"):
        shutil.rmtree(root / stale, ignore_errors=True)
    shrink_params(root / "params.yaml")
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "demo"], root)
    proc = run(["dvc", "repro"], root)
    (root / "repro1.log").write_text(proc.stdout + proc.stderr)
    return root
