"""``curate label-errors`` and ``curate influence`` on a user's own Parquet file and checkpoints (no DVC)."""

import json

import numpy as np
import polars as pl
from click.testing import CliRunner

from curation.cli import cli
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.training import TrainConfig, train
from curation.training.outputs import train_into


def test_label_errors_and_influence_commands(tmp_path) -> None:
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
