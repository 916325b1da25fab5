"""`curate init`: every stage with a commented params block, templates that cannot drift from the demo pipeline,
and a real `dvc repro` of the first stages in a fresh git + DVC repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from curation.cli import cli
from curation.config import load
from curation.stages import STAGE_CONFIGS
from curation.templates import refresh

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "curation" / "templates"


def test_shipped_templates_equal_the_demo_pipeline(tmp_path: Path) -> None:
    refresh(str(REPO / "dvc.yaml"), str(REPO / "params.yaml"), str(tmp_path))
    for name in ("dvc_stages.yaml", "params_blocks.yaml"):
        assert (tmp_path / name).read_text() == (TEMPLATES / name).read_text(), f"{name} drifted: run `make templates`"


def test_init_writes_every_stage_with_commented_params(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "params.yaml").read_text()
    assert "\n# Train a tabular classifier (mlp or logistic) on the features table.\ntrain_classifier:\n" in text
    assert "    learning_rate: 0.1 # peak learning rate\n" in text
    params = yaml.safe_load(text)
    for name in STAGE_CONFIGS:
        load(STAGE_CONFIGS[name](), params[name], where=f"params.yaml:{name}")  # every block is valid


def test_init_keeps_user_edits_and_adds_only_missing_blocks(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train_lm:\n  train_data: mine.parquet\n")
    result = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_CONFIGS)
    assert all(stage["cmd"] == f"python -m curation.stages.{name}" for name, stage in stages.items())
    assert not any(str(d).startswith(("pipelines/", "curation")) for s in stages.values() for d in s.get("deps", []))
    text = (tmp_path / "params.yaml").read_text()
    assert "train_lm:\n  train_data: mine.parquet\n" in text, "an existing block is left as the user wrote it"
    assert set(yaml.safe_load(text)) == set(STAGE_CONFIGS)
    again = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert "added stages (none; all present)" in again.output
    assert (tmp_path / "params.yaml").read_text() == text


def test_init_then_dvc_repro_runs_in_a_fresh_repo(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "CURATION_PROJECT_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr[-2000:]}"
        return proc

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run(str(Path(sys.executable).parent / "curate"), "init")
    run("dvc", "repro", "validate_data")
    assert (tmp_path / "artifacts" / "validate_data" / "validation.json").is_file()
    assert (tmp_path / "data" / "digits" / "train.parquet").is_file()
