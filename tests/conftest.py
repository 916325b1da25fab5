"""Shared fixtures: an isolated MLflow store per test, the shared real-data folder, quiet telemetry."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


TEST_SEED = 0


@pytest.fixture(autouse=True)
def seed_everything() -> None:
    """Every test starts from the same global RNG state (torch, numpy, random), so a fresh clone's run of one test
    in isolation, in any order or under xdist, sees the same numbers as CI."""
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded store (sqlite + artifacts) in ``tmp_path``; returns the project root it lives in."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CURATION_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("CURATION_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("CURATION_EXPERIMENT", "test")
    return tmp_path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (``CURATION_SHARED_DATA``, default ../shared/data); skips when absent."""
    path = Path(os.environ.get("CURATION_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set CURATION_SHARED_DATA)")
    return path
