"""The optimize_mixture → train_lm_mixture loop end to end on a tiny GPT, the mixture file, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from curation.cli import cli
from curation.config import load
from curation.data.corpus import CorpusConfig, build_corpus
from curation.errors import ConfigError
from curation.mixture.config import OptimizeMixtureConfig, TrainLMMixtureConfig
from curation.mixture.mixture_file import read_mixture, write_mixture
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.training import TrainConfig, train
from curation.training.outputs import read_manifest, read_positions, train_into

TINY = {"n_layer": 1, "n_head": 2, "d_model": 32, "block_size": 32}


@pytest.fixture(scope="module")
def tiny_lm_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real corpus (installed texts) and a tiny GPT trained on it in checkpoints/lm (built once)."""
    root = tmp_path_factory.mktemp("mixture_project")
    corpus = build_corpus(CorpusConfig(passage_chars=48, max_passages_per_domain=60,
                                       domains=("code", "licenses", "package_docs")))
    (root / "data").mkdir()
    frame = corpus.filter(pl.col("split") == "train")
    frame.write_parquet(root / "data/train.parquet")
    corpus.filter(pl.col("split") == "val").write_parquet(root / "data/val.parquet")
    adapter = ByteGPTAdapter(ByteGPTConfig(**TINY))
    cfg = TrainConfig(batch_size=16, n_checkpoints=1, learning_rate=3e-3)
    train_into(root / "checkpoints/lm", lambda tmp: train(adapter, frame, cfg, checkpoint_dir=tmp), source_digest="x")
    return root


@pytest.fixture
def project(tiny_lm_files: Path, tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the tiny project as the working directory, with its own MLflow store."""
    shutil.copytree(tiny_lm_files, tmp_path / "p")
    monkeypatch.chdir(tmp_path / "p")
    return tmp_path / "p"


def test_optimize_then_train_on_the_new_mixture(project: Path) -> None:
    from curation.stages import optimize_mixture, train_lm_mixture

    opt = load(OptimizeMixtureConfig, {"train_data": "data/train.parquet", "val_data": "data/val.parquet",
                                       "influence": {"tokens_per_domain": 512, "tasks": ["code"],
                                                     "max_rows_per_task": 16}}, where="test")
    optimize_mixture.main(opt)
    weights = read_mixture("mixture.yaml")
    assert set(weights) == {"code", "licenses", "package_docs"} and sum(weights.values()) == pytest.approx(1.0)
    assert max(weights, key=weights.get) == "code"  # the only task's own domain
    meta = yaml.safe_load(Path("mixture.yaml").read_text())["source"]
    assert meta["optimizer"] == "tikmix_d" and meta["success"] is True
    report = Path("reports/optimize_mixture")
    assert {"report.html", "influence_heatmap.png", "mixture.png", "group_influence.parquet", "additivity.png",
            "additivity.parquet"} <= {p.name for p in report.iterdir()}
    assert "Additivity check" in (report / "report.html").read_text()
    metrics = json.loads(Path("metrics/optimize_mixture.json").read_text())
    assert metrics["weight_code"] == pytest.approx(weights["code"], abs=1e-5) and "val_loss_code" in metrics
    # the default check realises 8 mixtures and reports their Pearson. Its value is not a property of the stage:
    # on this 1-layer GPT at 512 tokens per domain it ranged 0.10-0.95 over seeds 0-19 (0.02-0.93 at 2048), so
    # this test checks that it is measured and reported; test_additivity.py checks additivity on ground truth.
    assert metrics["additivity_mixtures"] == 8 and -1.0 <= metrics["additivity_pearson_code"] <= 1.0
    assert pl.read_parquet(report / "additivity.parquet").height == 8

    write_mixture({"code": 0.0, "licenses": 1.0, "package_docs": 0.0}, "mixture.yaml")  # a mixture change
    cfg = load(TrainLMMixtureConfig, {"train_data": "data/train.parquet", "val_data": "data/val.parquet",
                                      "train": {"epochs": 0.5, "batch_size": 16, "n_checkpoints": 1}}, where="test")
    train_lm_mixture.main(cfg)
    positions = read_positions("checkpoints/lm_mixture")
    domains = pl.read_parquet("data/train.parquet").join(positions, on="example_id")["domain"].unique().to_list()
    assert domains == ["licenses"]
    assert len(read_manifest("checkpoints/lm_mixture")) == 1
    assert "val_loss_licenses" in json.loads(Path("metrics/train_lm_mixture.json").read_text())


def test_cli_influence_optimize_show(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'cli-mlflow.db'}")
    args = ["--checkpoint", "checkpoints/lm", "--train", "data/train.parquet", "--val", "data/val.parquet",
            "--tokens", "256", "--tasks", "code,licenses"]
    result = CliRunner().invoke(cli, ["mixture", "influence", *args, "--out", "inf.parquet"])
    assert result.exit_code == 0, result.output
    assert "code" in result.output and pl.read_parquet("inf.parquet").height == 6
    result = CliRunner().invoke(cli, ["mixture", "optimize", *args, "--additivity", "4", "--report-dir", "rep",
                                      "--out", "m.yaml"])
    assert result.exit_code == 0, result.output
    assert "additivity: Pearson" in result.output and Path("rep/metrics.json").is_file()
    shown = CliRunner().invoke(cli, ["mixture", "show", "m.yaml"])
    assert shown.exit_code == 0 and "package_docs" in shown.output

    # the CLI logged one finished MLflow run to the store named by MLFLOW_TRACKING_URI, like the stage
    assert (project / "cli-mlflow.db").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'cli-mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["test"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.info.run_id in result.output and run.data.tags["curation.trigger"] == "cli"
    assert run.data.params["optimizer"] == "tikmix_d" and run.data.params["influence.tokens_per_domain"] == "256"
    assert run.data.params["tikmix_d.normalization"] == "prior_gain"  # the CLI's default
    weights = read_mixture("m.yaml")
    assert run.data.metrics["weight_code"] == pytest.approx(weights["code"], abs=1e-5)
    assert {"val_loss_code", "val_loss_licenses", "additivity_pearson", "prior_licenses"} <= set(run.data.metrics)
    client = mlflow.MlflowClient()
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"m.yaml", "report.html", "plots", "scores", "mixture"} <= top
    assert {"plots/influence_heatmap.png", "plots/mixture.png", "plots/additivity.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert yaml.safe_load(Path("m.yaml").read_text())["source"]["mlflow_run"] == run.info.run_id


def test_bad_mixture_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mixture file not found"):
        read_mixture(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mixture: {code: -1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: mixture.code: weight must be a non-negative number"):
        read_mixture(bad)
    bad.write_text("other: 1\n")
    with pytest.raises(ConfigError, match="missing or empty 'mixture'"):
        read_mixture(bad)
