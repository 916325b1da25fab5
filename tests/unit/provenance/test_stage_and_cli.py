"""The test_provenance stage and the `curate provenance` / `curate membership` commands on tiny models."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from curation.cli import cli
from curation.config import load
from curation.models.base import adapter_model_config
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.provenance.config import TestProvenanceConfig
from curation.provenance.retrain import OrderedTrainConfig
from curation.provenance.testbed import train_run
from curation.tracking import RunRecorder
from curation.tracking.registry import register_checkpoint

GPT = ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=32)


@pytest.fixture
def project(mlflow_store: Path, monkeypatch) -> Path:
    monkeypatch.chdir(mlflow_store)
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    texts = [" ".join(rng.choice(words, size=6)) + f" {i}" for i in range(120)]
    train = pl.DataFrame({"example_id": [f"x{i}" for i in range(120)], "text": texts})
    train.write_parquet("train.parquet")
    adapter = ByteGPTAdapter(GPT)
    cfg = OrderedTrainConfig(learning_rate=3e-3, batch_size=8)
    ours = train_run(train, seed=0, cfg=cfg, gpt=GPT)
    Path("run").mkdir()
    ours.positions.write_parquet("run/positions.parquet")
    others = {name: train_run(train, seed=seed, cfg=cfg, gpt=GPT).model
              for name, seed in (("reference", 1), ("other", 2), ("nulls/a", 3), ("nulls/b", 4), ("nulls/c", 5))}
    Path("nulls").mkdir()
    Path("empty").mkdir()
    for name, model in (("ours", ours.model), *others.items()):
        info = CheckpointInfo(adapter=adapter.name, model_config=adapter_model_config(adapter), step=15,
                              learning_rate=3e-3)
        save_checkpoint(f"{name}.safetensors", model.state_dict(), info)
    with RunRecorder("register", None):
        register_checkpoint("ours.safetensors", "tiny-ours")
    return mlflow_store


def test_stage_writes_report_and_tags_the_model_version(project: Path) -> None:
    from curation.stages.test_provenance import main

    cfg = load(TestProvenanceConfig, {"train_data": "train.parquet", "run_dir": "run", "reference": "reference.safetensors",
                                      "suspects": ["models:/tiny-ours/1", "other.safetensors"], "null_models": ["nulls"],
                                      "n_permutations": 49, "out_dir": "out"})
    main(cfg)
    results = pl.read_parquet("out/results.parquet")
    assert results["suspect"].to_list() == ["models:/tiny-ours/1", "other.safetensors"]
    # ensemble_reference (the default): the reference joins the 3-model bank, and every model is centred on the
    # mean loss of suspect, reference and bank, so the bank's rho differ a little from suspect to suspect
    assert results["n"].to_list() == [120, 120] and results["n_null_models"].to_list() == [4, 4]
    assert results["verdict"].to_list()[1] in ("not shown", "evidence of derivation (not decisive)")
    assert results["p_verdict"][1] == pytest.approx(max(results["p_value"][1], results["null_p_t"][1]))
    html = Path("out/report.html").read_text()
    assert "Spearman" in html and "data:image/png;base64" in html and "Null bank" in html and "Verdicts" in html
    assert "mean loss of the suspect, the reference model and the null bank" in html
    assert sorted(p.name for p in Path("out/plots").iterdir()) == ["other.png", "tiny-ours_1.png"]
    tags = mlflow.MlflowClient().get_model_version("tiny-ours", "1").tags
    assert float(tags["curation.provenance.p_value"]) == pytest.approx(results["p_value"][0])
    assert float(tags["curation.provenance.statistic"]) == pytest.approx(results["statistic"][0])
    assert float(tags["curation.provenance.null_p_t"]) == pytest.approx(results["null_p_t"][0])
    assert tags["curation.provenance.verdict"] == results["verdict"][0]
    run = mlflow.search_runs(experiment_names=["test"], filter_string="tags.`curation.stage` = 'test_provenance'",
                             output_format="list")[0]
    assert run.info.status == "FINISHED"
    assert {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)} >= {"report.html", "scores", "plots"}


def test_stage_examines_the_version_a_webhook_job_names(project: Path, monkeypatch) -> None:
    from curation.stages.test_provenance import main

    with RunRecorder("register", None):
        register_checkpoint("other.safetensors", "tiny-other")
    cfg = load(TestProvenanceConfig, {"train_data": "train.parquet", "run_dir": "run", "reference": "reference.safetensors",
                                      "examine_registered": ["tiny-ours"], "n_permutations": 49, "out_dir": "out"})
    monkeypatch.setenv("CURATION_MODEL_URI", "models:/tiny-other/1")  # not a watched model: nothing to test
    main(cfg)
    assert not Path("out/results.parquet").exists()
    monkeypatch.setenv("CURATION_MODEL_URI", "models:/tiny-ours/1")
    main(cfg)
    results = pl.read_parquet("out/results.parquet")
    assert results["suspect"].to_list() == ["models:/tiny-ours/1"]
    tags = mlflow.MlflowClient().get_model_version("tiny-ours", "1").tags
    assert float(tags["curation.provenance.p_value"]) == pytest.approx(results["p_value"][0])
    assert "curation.provenance.p_value" not in mlflow.MlflowClient().get_model_version("tiny-other", "1").tags
    run = mlflow.search_runs(experiment_names=["test"], order_by=["start_time DESC"], output_format="list",
                             filter_string="tags.`curation.stage` = 'test_provenance'")[0]
    assert run.data.tags["curation.examined_model"] == "models:/tiny-ours/1"


def test_cli_provenance_and_membership(project: Path) -> None:
    res = CliRunner().invoke(cli, ["provenance", "query", "--train", "train.parquet", "--run", "run", "--reference",
                                   "reference.safetensors", "--suspect", "ours.safetensors", "--permutations", "19",
                                   "--null-model", "nulls", "--null-model", "other.safetensors", "--out", "prov.parquet",
                                   "--single-reference"])
    assert res.exit_code == 0, res.output
    assert "ours.safetensors: rho=" in res.output and "null_p_t=" in res.output and "(4 null models)" in res.output
    assert pl.read_parquet("prov.parquet")["n"][0] == 120 and pl.read_parquet("prov.parquet")["n_null_models"][0] == 4
    single = pl.read_parquet("prov.parquet")["statistic"][0]
    # default: the stage's ensemble reference (the reference joins the bank) and a verdict line per suspect
    res = CliRunner().invoke(cli, ["provenance", "query", "--train", "train.parquet", "--run", "run", "--reference",
                                   "reference.safetensors", "--suspect", "ours.safetensors", "--permutations", "19",
                                   "--null-model", "nulls", "--null-model", "other.safetensors", "--out", "prov.parquet"])
    assert res.exit_code == 0, res.output
    assert "(5 null models)" in res.output and pl.read_parquet("prov.parquet")["statistic"][0] != single
    assert any(v in res.output for v in ("derived from our run", "evidence of derivation", "not shown")), res.output
    for bank, message in ((["other.safetensors"], "a null bank needs at least 2 models, got 1 (other.safetensors)"),
                          (["empty"], "empty: folder holds no .safetensors checkpoint"),
                          (["nulls", "ours.safetensors"], "ours.safetensors is both a suspect and in the null bank")):
        res = CliRunner().invoke(cli, ["provenance", "query", "--train", "train.parquet", "--run", "run", "--reference",
                                       "reference.safetensors", "--suspect", "ours.safetensors",
                                       *[a for b in bank for a in ("--null-model", b)]])
        assert res.exit_code != 0 and message in str(res.exception or res.output)
    res = CliRunner().invoke(cli, ["membership", "train.parquet", "--model", "models:/tiny-ours/1", "--reference",
                                   "reference.safetensors", "-k", "0.3", "--out", "scores.parquet"])
    assert res.exit_code == 0, res.output
    scores = pl.read_parquet("scores.parquet")
    assert scores.columns == ["example_id", "loss", "min_k", "min_k_plus_plus", "zlib", "reference"]
    assert scores.height == 120 and scores.select(pl.all().exclude("example_id").is_finite().all()).row(0) == (True,) * 5
    res = CliRunner().invoke(cli, ["provenance", "query", "--train", "train.parquet", "--run", "run", "--reference",
                                   "missing.safetensors", "--suspect", "ours.safetensors"])
    assert res.exit_code != 0 and "missing.safetensors: checkpoint not found" in str(res.exception or res.output)


def test_suspects_stage_config_rejects_a_one_model_bank_and_shared_seeds() -> None:
    from curation.provenance.config import ProvenanceSuspectsConfig

    assert load(ProvenanceSuspectsConfig, {"null_models": 0}).null_models == 0
    with pytest.raises(ValueError, match="null_models must be 0 or at least 2"):
        ProvenanceSuspectsConfig(null_models=1)
    with pytest.raises(ValueError, match="null-bank seeds"):
        ProvenanceSuspectsConfig(null_models=3, null_seed=0, reference_seed=1, independent_seed=5)
