"""The tree path of the detect_label_errors and score_influence stages on a small Adult slice: the output contract
(issue table + dataset summary, matrix/top-k) and planted flipped labels ranked above chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score

from curation.gbdt.config import TreeInfluenceConfig
from curation.gbdt.train import train_tree_model
from curation.gradients.config import ScoreInfluenceConfig
from curation.selection.config import DetectLabelErrorsConfig
from curation.selection.self_influence import SelfInfluenceSelectorConfig
from curation.stages import detect_label_errors, score_influence
from tests.unit.gbdt.test_adapter_cli import OPTIONS, adult  # noqa: F401 - fixture


@pytest.fixture
def tree(adult, tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    train_path, query_path, _ = adult
    train_tree_model(str(train_path), str(tmp_path / "model"), options=OPTIONS)
    return train_path, query_path, tmp_path / "model"


def test_detect_label_errors_stage_with_a_tree_model(tree, tmp_path: Path) -> None:
    train_path, _, model = tree
    cfg = DetectLabelErrorsConfig(
        selector=SelfInfluenceSelectorConfig(fraction=0.1, action="flag"), known_errors=str(tmp_path / "known.parquet"),
        out_dir=str(tmp_path / "filtered"), report_dir=str(tmp_path / "report"), tag_model="",
        tree=TreeInfluenceConfig(model=str(model), train=str(train_path), method="leaf_influence",
                                 options={"update_set": 0}))
    detect_label_errors.main(cfg)
    issues = pl.read_parquet(tmp_path / "report" / "label_issues.parquet")
    summary = pl.read_parquet(tmp_path / "report" / "summary.parquet")
    assert issues.columns[:4] == ["example_id", "label_score", "is_label_issue", "label_rank"]
    assert issues.height == 300 and int(issues["is_label_issue"].sum()) == 30
    assert summary["method"][0] == "leaf_influence_self_influence" and summary["n_issues"][0] == 30
    flipped = pl.read_parquet(tmp_path / "known.parquet")["example_id"].to_list()
    ap = average_precision_score(issues["example_id"].is_in(flipped).to_numpy(), issues["label_score"].to_numpy())
    assert ap > 0.3  # chance 0.10
    assert (tmp_path / "filtered" / "filtered.parquet").exists() and (tmp_path / "report" / "report.html").exists()


def test_score_influence_stage_with_a_tree_model(tree, tmp_path: Path) -> None:
    train_path, query_path, model = tree
    cfg = ScoreInfluenceConfig(out_dir=str(tmp_path / "scores"), top_k=5,
                               tree=TreeInfluenceConfig(model=str(model), train=str(train_path),
                                                        queries=str(query_path), method="boostin"))
    score_influence.main(cfg)
    matrix = np.load(tmp_path / "scores" / "boostin" / "matrix.npy")
    top = pl.read_parquet(tmp_path / "scores" / "boostin" / "top_k.parquet")
    assert matrix.shape == (300, 20) and top.height == 100
    assert (tmp_path / "scores" / "report.html").exists()
