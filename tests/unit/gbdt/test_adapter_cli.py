"""The LightGBM adapter (fit, text-format persistence, bad input) and the tree path of ``curate influence`` and
``curate label-errors`` on a small slice of UCI Adult."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from curation.cli import cli
from curation.errors import CurationError, DataContractError
from curation.gbdt.adapter import MODEL_FILE, LightGBMAdapter, LightGBMConfig
from curation.gbdt.lightgbm_ensemble import ensemble_from_lightgbm
from curation.gbdt.loading import load_tree_model
from curation.gbdt.train import train_tree_model

OPTIONS = {"exclude": ["income"], "n_estimators": 15, "num_leaves": 8, "min_data_in_leaf": 5}


@pytest.fixture
def adult(shared_data: Path, tmp_path: Path) -> tuple[Path, Path, pl.DataFrame]:
    """300 training rows (10% of labels flipped, listed in known.parquet) and 20 query rows of Adult."""
    frame = pl.read_parquet(shared_data / "adult" / "train.parquet").head(320).with_row_index("example_id")
    train, queries = frame.head(300), frame.tail(20)
    flipped = np.random.default_rng(0).choice(300, 30, replace=False)
    train = train.with_columns(pl.when(pl.col("example_id").is_in(flipped)).then(1 - pl.col("label"))
                               .otherwise(pl.col("label")).alias("label"))
    train.write_parquet(tmp_path / "train.parquet")
    queries.write_parquet(tmp_path / "queries.parquet")
    pl.DataFrame({"example_id": flipped.astype(np.uint32)}).write_parquet(tmp_path / "known.parquet")
    return tmp_path / "train.parquet", tmp_path / "queries.parquet", train


def test_fit_save_load_roundtrip(adult, tmp_path: Path) -> None:
    train_path, _, train = adult
    summary = train_tree_model(str(train_path), str(tmp_path / "model"), options=OPTIONS)
    assert summary["trees"] == 15 and summary["version"] is None
    text = (tmp_path / "model" / MODEL_FILE).read_text(encoding="utf-8")
    assert text.startswith("tree\n")  # LightGBM's text model format, not a pickle
    adapter, model = load_tree_model(str(tmp_path / "model"))
    assert isinstance(adapter, LightGBMAdapter) and "income" not in model.encoding.features
    fresh = LightGBMAdapter(LightGBMConfig(exclude=("income",), n_estimators=15, num_leaves=8, min_data_in_leaf=5))
    refit = fresh.fit(train)
    assert np.array_equal(adapter.predict_raw(model, train), fresh.predict_raw(refit, train))
    ensemble = adapter.ensemble(model, train)
    assert ensemble.newton_mismatch(ensemble.trajectory(adapter.features(model, train), adapter.labels(model, train))) < 1e-5


def test_bad_input_is_one_line(adult, tmp_path: Path) -> None:
    _, _, train = adult
    with pytest.raises(DataContractError, match=r"row 0, column 'age': binary labels must be 0 or 1"):
        LightGBMAdapter(LightGBMConfig(label="age")).fit(train)
    with pytest.raises(DataContractError, match="missing label column 'target'"):
        LightGBMAdapter(LightGBMConfig(label="target")).fit(train)
    with pytest.raises(CurationError, match="no tree_model.json"):
        load_tree_model(str(tmp_path))
    import lightgbm

    x = np.random.default_rng(0).normal(size=(200, 3))
    bagged = lightgbm.train({"objective": "binary", "bagging_fraction": 0.5, "bagging_freq": 1, "verbose": -1},
                            lightgbm.Dataset(x, (x[:, 0] > 0).astype(float)), num_boost_round=2)
    with pytest.raises(CurationError, match="bagging_fraction=0.5 is not supported"):
        ensemble_from_lightgbm(bagged, np.zeros(200))


def test_cli_influence_and_label_errors(adult, tmp_path: Path) -> None:
    train_path, query_path, _ = adult
    train_tree_model(str(train_path), str(tmp_path / "model"), options=OPTIONS)
    runner = CliRunner()
    for method, extra in (("boostin", []), ("trex", []), ("leaf_influence", ["--set", "update_set=0"])):
        out = tmp_path / method
        result = runner.invoke(cli, ["influence", "--checkpoints", str(tmp_path / "model"), "--train",
                                      str(train_path), "--queries", str(query_path), "--method", method,
                                      "--top-k", "3", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        matrix = np.load(out / "matrix.npy")
        assert matrix.shape == (300, 20) and np.isfinite(matrix).all()
        top = pl.read_parquet(out / "top_k.parquet")
        assert top.height == 60 and set(top["rank"]) == {1, 2, 3}
    result = runner.invoke(cli, ["label-errors", "--checkpoints", str(tmp_path / "model"), "--train",
                                  str(train_path), "--method", "boostin", "--fraction", "0.1", "--action", "flag",
                                  "--known-errors", str(tmp_path / "known.parquet"), "--out", str(tmp_path / "le")])
    assert result.exit_code == 0, result.output
    ap = float(result.output.split("average precision ")[1].split(",")[0])
    assert ap > 0.3  # chance is 0.10 (30 of 300 flipped)
    bad = runner.invoke(cli, ["influence", "--checkpoints", str(tmp_path / "model"), "--train", str(train_path),
                               "--queries", str(query_path), "--method", "boostin", "--train-sample", "50",
                               "--out", str(tmp_path / "x")])
    assert isinstance(bad.exception, CurationError) and "every row the model was fitted on" in str(bad.exception)
    pl.read_parquet(query_path).drop("age").write_parquet(tmp_path / "no_age.parquet")
    bad = runner.invoke(cli, ["influence", "--checkpoints", str(tmp_path / "model"), "--train", str(train_path),
                              "--queries", str(tmp_path / "no_age.parquet"), "--method", "trex", "--out",
                              str(tmp_path / "x")])
    assert str(bad.exception) == f"{tmp_path / 'no_age.parquet'}: missing feature column 'age'"


def test_registered_through_the_mlflow_lightgbm_flavour(adult, tmp_path: Path, mlflow_store: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    train_path, _, train = adult
    summary = train_tree_model(str(train_path), str(tmp_path / "model"), options=OPTIONS, register_as="adult-lgbm")
    assert summary["version"] == "1"
    adapter, model = load_tree_model("models:/adult-lgbm/1")
    local_adapter, local = load_tree_model(str(tmp_path / "model"))
    assert np.array_equal(adapter.predict_raw(model, train), local_adapter.predict_raw(local, train))
    assert model.encoding == local.encoding
    flavour = next(mlflow_store.rglob("MLmodel")).read_text(encoding="utf-8")
    assert "lightgbm:" in flavour and "model.lgb" in flavour  # LightGBM's own text format, not a pickle
