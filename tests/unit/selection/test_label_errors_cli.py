"""``curate label-errors`` and ``curate influence`` on a user's own Parquet file and checkpoints (no DVC)."""

import json
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from curation.cli import cli, main
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.registered import write_registered
from curation.tracking import RunRecorder
from curation.tracking.registry import register_checkpoint
from curation.training import TrainConfig, train
from curation.training.outputs import read_manifest, train_into


def _noisy_blobs(tmp_path: Path) -> pl.DataFrame:
    """120 rows of 3 Gaussian blobs with the first 12 labels flipped; trained MLP checkpoints in tmp/ckpt."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 3
    labels = rng.integers(0, 3, 120)
    x = centers[labels] + rng.normal(size=(120, 5))
    noisy = labels.copy()
    noisy[:12] = (labels[:12] + 1) % 3  # 10% wrong labels
    frame = pl.DataFrame({"example_id": [f"r{i}" for i in range(120)], "features": x.tolist(), "label": noisy})
    frame.write_parquet(tmp_path / "train.parquet")
    pl.DataFrame({"example_id": [f"r{i}" for i in range(12)]}).write_parquet(tmp_path / "known.parquet")
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=5, n_classes=3, hidden=(16,)))
    cfg = TrainConfig(epochs=20, batch_size=16, optimizer="sgd", learning_rate=0.1, n_checkpoints=3, eval_every=10**6)
    train_into(tmp_path / "ckpt", lambda d: train(adapter, frame, cfg, checkpoint_dir=d, show_progress=False),
               source_digest="x")
    return frame


def test_label_errors_and_influence_commands(tmp_path) -> None:
    frame = _noisy_blobs(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["label-errors", "--checkpoints", str(tmp_path / "ckpt"), "--train",
                              str(tmp_path / "train.parquet"), "--fraction", "0.1", "--known-errors",
                              str(tmp_path / "known.parquet"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "kept 108, dropped 12" in res.output
    ap = float(res.output.split("average precision ")[1].split(",")[0])
    assert ap > 0.8, res.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["dropped_by_reason"] == {"high_self_influence": 12}
    assert pl.read_parquet(tmp_path / "out" / "filtered.parquet").schema == frame.schema

    frame.head(3).write_parquet(tmp_path / "queries.parquet")
    res = runner.invoke(cli, ["influence", "--checkpoints", str(tmp_path / "ckpt"), "--train",
                              str(tmp_path / "train.parquet"), "--queries", str(tmp_path / "queries.parquet"),
                              "--method", "trak", "--projection", "gaussian", "--dim", "64", "--top-k", "4",
                              "--out", str(tmp_path / "inf")])
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "inf" / "matrix.npy").shape == (120, 3)
    top = pl.read_parquet(tmp_path / "inf" / "top_k.parquet")
    assert top.height == 12 and set(top.columns) == {"example_id", "score", "query_id", "rank"}


def test_help_shows_an_example() -> None:
    for command in ("influence", "label-errors"):
        res = CliRunner().invoke(cli, [command, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output and "curate " + command in res.output


@pytest.mark.parametrize(("column", "value", "message"), [
    ("label", 7, "column 'label', row 5"),
    ("example_id", "r4", "column 'example_id', row 4 (example_id='r4'): duplicate value"),
])
def test_table_breaking_the_model_contract_is_a_one_line_error(tmp_path, monkeypatch, capsys, column, value,
                                                               message) -> None:
    frame = _noisy_blobs(tmp_path)
    bad = frame.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(value)).otherwise(pl.col(column))
                             .alias(column))
    bad.write_parquet(tmp_path / "bad.parquet")
    for command in (["label-errors"], ["influence", "--queries", str(tmp_path / "train.parquet")]):
        monkeypatch.setattr("sys.argv", ["curate", *command, "--checkpoints", str(tmp_path / "ckpt"), "--train",
                                         str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "out")])
        with pytest.raises(SystemExit) as info:
            main()
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {tmp_path / 'bad.parquet'}:") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()


def test_label_error_rate_is_tagged_on_the_registered_version(tmp_path, mlflow_store, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _noisy_blobs(tmp_path)
    last = read_manifest(tmp_path / "ckpt")[-1]["path"]
    with RunRecorder("register", None):
        version = register_checkpoint(last, "blobs-mlp")
    write_registered(last, f"models:/blobs-mlp/{version}")
    res = CliRunner().invoke(cli, ["label-errors", "--checkpoints", str(tmp_path / "ckpt"), "--train",
                                   str(tmp_path / "train.parquet"), "--fraction", "0.15", "--known-errors",
                                   str(tmp_path / "known.parquet"), "--tag-model", "auto", "--out",
                                   str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert f"tagged models:/blobs-mlp/{version}: label-error rate 0.1500" in res.output
    tags = mlflow.MlflowClient().get_model_version("blobs-mlp", version).tags
    assert tags["curation.label_errors.rate"] == "0.1500" and tags["curation.label_errors.flagged"] == "18"
    assert tags["curation.label_errors.rows"] == "120"
    assert float(tags["curation.label_errors.average_precision"]) > 0.8
