"""The ``select_targeted`` and ``refresh_predictor`` stages in-process on the tiny byte GPT workspace of
``test_select_targeted``: the selection outputs, the planted rows recovered by the stage's LESS, and an MLflow run
per stage with its metrics, report and selection artifacts."""

from __future__ import annotations

from pathlib import Path

import mlflow
import polars as pl
import pytest

pytest.importorskip("peft")

from curation.config.stages import RefreshPredictorConfig, SelectTargetedConfig
from curation.selection.selector import SelectorConfig
from curation.stages import refresh_predictor, select_targeted
from tests.unit.selection.test_select_targeted import OUTPUTS, PLANTED, workspace  # noqa: F401 - fixture

# the nested form of test_select_targeted.WARMUP (6-8 of 8 planted rows over seeds 0-19 in the library test)
WARMUP = {"warmup": {"fraction": 0.5, "epochs": 3, "batch_size": 8, "learning_rate": 0.005, "lora_r": 4,
                     "lora_alpha": 16}, "features": {"proj_dim": 0}}
TOP8 = SelectorConfig(budget="count", value=8, method="topk")


def _run(stage: str) -> mlflow.entities.Run:
    runs = mlflow.search_runs(experiment_names=["test"], output_format="list",
                              filter_string=f"tags.`curation.stage` = '{stage}'")
    assert len(runs) == 1
    return runs[0]


def _artifacts(run: mlflow.entities.Run) -> set[str]:
    client = mlflow.MlflowClient()
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    return top | {a.path for a in client.list_artifacts(run.info.run_id, "selection")}


def test_select_targeted_stage(workspace: Path, tmp_path: Path, mlflow_store: Path,  # noqa: F811
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = SelectTargetedConfig(checkpoints=str(workspace / "lm.safetensors"), pool=str(workspace / "pool.parquet"),
                               targets=str(workspace / "math.parquet"), task_column="task", targets_per_task=0,
                               method="less", options=WARMUP, selector=TOP8, out_dir="sel", report_dir="report")
    select_targeted.main(cfg)
    assert all((tmp_path / "sel" / name).is_file() for name in OUTPUTS)
    kept = set(pl.read_parquet(tmp_path / "sel" / "filtered.parquet")["example_id"].to_list())
    assert len(kept) == 8 and len(kept & PLANTED) >= 5  # as the CLI test: 6-8 of 8 over 20 seeds, random 1
    run = _run("select_targeted")
    assert run.data.metrics["kept"] == 8 and run.data.metrics["rows_in"] == 64
    assert {"report.html", "plots", "selection/manifest.json", "selection/selection.parquet"} <= _artifacts(run)


def test_refresh_predictor_stage(workspace: Path, tmp_path: Path, mlflow_store: Path,  # noqa: F811
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = RefreshPredictorConfig(checkpoints=str(workspace / "lm.safetensors"), pool=str(workspace / "pool.parquet"),
                                 targets=str(workspace / "math.parquet"), task_column="task", targets_per_task=0,
                                 method="mates", options={"sample_fraction": 0.25, "epochs": 50}, holdout=12,
                                 selector=TOP8, out_dir="refresh", report_dir="report")
    refresh_predictor.main(cfg)
    assert all((tmp_path / "refresh" / name).is_file() for name in OUTPUTS)
    metrics = _run("refresh_predictor").data.metrics
    assert -1 <= metrics["heldout_spearman"] <= 1 and metrics["oracle_rows"] == 16
    assert metrics["cost_saved"] == pytest.approx(1 - metrics["round_s"] / metrics["all_oracle_s"])
    assert "held-out Spearman" in (tmp_path / "report" / "report.html").read_text()
