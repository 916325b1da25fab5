"""Observational tests of suspect texts through the product: the test_provenance stage and `curate provenance observe`.

Ground truth on a tiny run: text that reproduces the examples our run saw last (what a model derived from ours
regurgitates) must be detected by both tests; text unrelated to our order (examples from the middle of the run,
never in the retrained phase) must not be.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner

from curation.cli import cli
from curation.config import load
from curation.errors import CurationError
from curation.models.base import adapter_model_config
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.provenance.config import ObserveConfig, TestProvenanceConfig
from curation.provenance.generate import sample_texts
from curation.provenance.observe import read_suspect_texts
from curation.provenance.retrain import OrderedTrainConfig, train_in_order

GPT = ByteGPTConfig(n_layer=1, n_head=2, d_model=32, block_size=48)
N, PHASE, K = 160, 32, 19
RETRAIN = {"learning_rate": 0.02, "batch_size": 4}


@pytest.fixture
def run(mlflow_store: Path, monkeypatch) -> Path:
    """Our tiny run (order recorded, boundary checkpoint before the last 20%) and three suspect texts: sampled from
    our run's final model (derived), sampled from the same phase trained in another order (independent of our
    order), and a verbatim copy of the run's last eight examples (span overlap's ground truth)."""
    monkeypatch.chdir(mlflow_store)
    rng = np.random.default_rng(0)
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=5)) for _ in range(400)]
    texts = [" ".join(rng.choice(vocab, size=7)) for _ in range(N)]
    train = pl.DataFrame({"example_id": [f"x{i}" for i in range(N)], "text": texts})
    train.write_parquet("train.parquet")
    order = rng.permutation(N)
    Path("run").mkdir()
    pl.DataFrame({"example_id": [f"x{i}" for i in order], "position": np.arange(N)}).write_parquet("run/positions.parquet")
    adapter = ByteGPTAdapter(GPT)
    cfg = OrderedTrainConfig(**RETRAIN)
    torch.manual_seed(0)
    boundary = train_in_order(adapter, adapter.build_model(), train[order[: N - PHASE]], cfg, copy_model=False)
    info = CheckpointInfo(adapter=adapter.name, model_config=adapter_model_config(adapter), step=32, learning_rate=0.02)
    save_checkpoint("run/boundary.safetensors", boundary.state_dict(), info)
    phase = train[order[N - PHASE :]]
    ours = train_in_order(adapter, boundary, phase, cfg)
    elsewise = train_in_order(adapter, boundary, phase[np.random.default_rng(99).permutation(PHASE)], cfg)
    prompts = [texts[i][:8] for i in order[:20]]
    for name, model in (("derived", ours), ("independent", elsewise)):
        sampled = sample_texts(adapter, model, prompts, n_new=32, seed=5)
        pl.DataFrame({"prompt": prompts, "text": sampled}).write_parquet(f"{name}.parquet")
    pl.DataFrame({"text": [texts[i] for i in order[-8:]]}).write_parquet("copied.parquet")
    other = [" ".join(rng.choice(vocab, size=7)) for _ in range(24)]  # text of our vocabulary, never trained on
    pl.DataFrame({"text": other}).write_parquet("other.parquet")
    return mlflow_store


def observe_params(**over) -> dict:
    return {"methods": ["overlap", "retrain"], "span_chars": 12, "span_permutations": 199,
            "boundary": "run/boundary.safetensors", "fraction": PHASE / N, "n_reshuffles": K,
            "retrain_train": RETRAIN, **over}


def test_stage_runs_both_observational_tests_on_each_text(run: Path) -> None:
    from curation.stages.test_provenance import main

    cfg = load(TestProvenanceConfig, {"train_data": "train.parquet", "run_dir": "run", "out_dir": "out",
                                      "suspect_texts": ["derived.parquet", "independent.parquet", "copied.parquet"],
                                      "observe": observe_params()})
    main(cfg)
    obs = pl.read_parquet("out/observed.parquet")
    files = ["derived.parquet", "independent.parquet", "copied.parquet"]
    assert obs.select("text_file", "method").rows() == [(f, m) for m in ("overlap", "retrain") for f in files]
    rows = {(r["text_file"], r["method"]): r for r in obs.iter_rows(named=True)}
    derived, independent = rows["derived.parquet", "retrain"], rows["independent.parquet", "retrain"]
    assert derived["n_tokens"] == 20 * 32 and derived["n_reshuffles"] == K and derived["p_value_kind"] == "t"
    assert derived["statistic"] > 2 and derived["p_value"] < 0.01 and derived["p_rank"] == pytest.approx(1 / (K + 1))
    assert independent["p_value"] > 0.05 and independent["p_rank"] > 0.05
    copied = rows["copied.parquet", "overlap"]
    assert copied["statistic"] > 0.2 and copied["p_value"] < 1e-3 and copied["p_rank"] == pytest.approx(1 / 200)
    assert copied["n_tokens"] == 8 * 41
    # plain-word verdicts need every p-value: the derived text's Student p < 0.01 but its rank p is at the floor
    # 1/(K+1) (K reshuffles), the copied text's overlap test has both p-values at or below its permutation floor
    assert derived["verdict"] == "evidence of derivation (not decisive)"  # K = 19: rank p floor 0.05
    assert derived["p_verdict"] == pytest.approx(1 / (K + 1))
    assert derived["reshuffles_needed"] == 999 and 0 < derived["tokens_needed"] < 10 * derived["n_tokens"]
    assert independent["verdict"] == "not shown"
    assert copied["verdict"] == "evidence of derivation (not decisive)" and copied["p_verdict"] == pytest.approx(1 / 200)
    metrics = json.loads(Path("metrics/test_provenance.json").read_text())
    assert metrics["observe.copied.parquet.overlap.verdict_code"] == 1.0
    assert metrics["observe.derived.parquet.retrain.p_t"] == pytest.approx(derived["p_t"])
    assert metrics["observe.copied.parquet.overlap.statistic"] == pytest.approx(copied["statistic"])
    html = Path("out/report.html").read_text()
    assert "Observational tests of suspect texts" in html and "Student prediction" in html
    assert f"K = {K} reshuffles" in html  # the verdict says why test (b) cannot be decisive at this size
    assert not Path("out/results.parquet").exists()  # no suspect models listed: no query test


def test_boundary_sample_control_keeps_the_separation(run: Path) -> None:
    from curation.io import read_table
    from curation.provenance.observe import observe_files
    from curation.training.outputs import read_positions

    cfg = load(ObserveConfig, observe_params(methods=["retrain"], statistic="normal_scores",
                                             control="boundary_samples", report_p="rank"))
    obs = observe_files(["derived.parquet", "independent.parquet"], read_table("train.parquet"),
                        read_positions("run"), cfg)
    derived, independent = obs.row(0, named=True), obs.row(1, named=True)
    assert derived["p_value"] == derived["p_rank"] == pytest.approx(1 / (K + 1)) and derived["p_t"] < 0.05
    assert independent["p_value"] > 0.05


def test_cli_observe_prints_each_test_and_writes_the_table(run: Path) -> None:
    args = ["provenance", "observe", "--text", "derived.parquet", "--text", "independent.parquet", "--train",
            "train.parquet", "--run", "run", "--method", "overlap", "--method", "retrain", "--span-chars", "12",
            "--boundary", "run/boundary.safetensors", "--fraction", str(PHASE / N), "--reshuffles", "9",
            "--lr", "0.02", "--batch-size", "4", "--report-p", "rank", "--out", "obs.parquet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "derived.parquet [retrain]: statistic=+" in res.output and "(rank)" in res.output
    obs = pl.read_parquet("obs.parquet")
    assert obs.height == 4 and obs.filter(pl.col("method") == "retrain")["p_rank"][0] == pytest.approx(0.1)
    res = CliRunner().invoke(cli, ["provenance", "observe", "--text", "derived.parquet", "--train", "train.parquet",
                                   "--run", "run", "--method", "retrain"])
    assert res.exit_code != 0 and "needs boundary" in str(res.exception or res.output)
    assert "Example:" in CliRunner().invoke(cli, ["provenance", "observe", "--help"]).output


def test_simulated_derivation_keeps_the_test_exact_and_rejects_bad_data(run: Path) -> None:
    args = ["provenance", "observe", "--text", "derived.parquet", "--text", "independent.parquet", "--train",
            "train.parquet", "--run", "run", "--method", "retrain", "--boundary", "run/boundary.safetensors",
            "--fraction", str(PHASE / N), "--reshuffles", str(K), "--lr", "0.02", "--batch-size", "4",
            "--derive-data", "other.parquet", "--derive-offset", "4", "--derive-rows", "16", "--derive-lr", "0.002",
            "--derive-batch-size", "4", "--out", "obs.parquet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    derived, independent = pl.read_parquet("obs.parquet").iter_rows(named=True)
    assert derived["p_rank"] == pytest.approx(1 / (K + 1)) and derived["p_t"] < 0.05  # our model's own text
    assert independent["p_t"] > 0.05
    for rows, message in (("30", "other.parquet: simulated derivation needs rows 4-33, the table has 24"),):
        bad = [a if a != "16" else rows for a in args]
        res = CliRunner().invoke(cli, bad)
        assert res.exit_code != 0 and message in str(res.exception or res.output)
    pl.DataFrame({"text": ["x"] * 10 + [None] + ["y"] * 19}).write_parquet("gap.parquet")
    res = CliRunner().invoke(cli, [a if a != "other.parquet" else "gap.parquet" for a in args])
    assert res.exit_code != 0 and "gap.parquet: column 'text' is null at row 10" in str(res.exception or res.output)
    with pytest.raises(CurationError, match="simulate_derivation: offset must be >= 0"):
        load(ObserveConfig, observe_params(simulate_derivation={"data": "other.parquet", "offset": -1}))
    pl.DataFrame({"body": ["x"] * 30}).write_parquet("notext.parquet")
    res = CliRunner().invoke(cli, [a if a != "other.parquet" else "notext.parquet" for a in args])
    assert res.exit_code != 0 and "notext.parquet: missing column 'text'" in str(res.exception or res.output)


def test_suspect_text_files_are_read_or_rejected_with_the_file_named(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some suspect text\nover two lines")
    assert read_suspect_texts(tmp_path / "a.txt").rows() == [(0, "some suspect text\nover two lines")]
    pl.DataFrame({"prompt": ["p1", "p2"], "text": ["t1", "t2"]}).write_parquet(tmp_path / "b.parquet")
    assert read_suspect_texts(tmp_path / "b.parquet").columns == ["example_id", "text", "prompt"]
    pl.DataFrame({"body": ["x"]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(CurationError, match="c.parquet: missing column 'text'"):
        read_suspect_texts(tmp_path / "c.parquet")
    pl.DataFrame({"text": ["x", None]}).write_parquet(tmp_path / "d.parquet")
    with pytest.raises(CurationError, match="d.parquet: column 'text' is null at row 1"):
        read_suspect_texts(tmp_path / "d.parquet")
    with pytest.raises(CurationError, match="e.txt: file not found"):
        read_suspect_texts(tmp_path / "e.txt")
    with pytest.raises(ValueError, match="needs boundary"):
        ObserveConfig(methods=("retrain",))


def test_boundary_folder_resolves_to_the_last_checkpoint_before_the_phase(tmp_path) -> None:
    from curation.errors import CurationError
    from curation.provenance.observe import boundary_checkpoint

    files = [{"file": f"ckpt-{s:06d}.safetensors", "step": s, "learning_rate": 1e-3} for s in (32, 64, 97, 129)]
    (tmp_path / "checkpoints.json").write_text(json.dumps({"checkpoints": files}))
    assert boundary_checkpoint(str(tmp_path), 0.02) == str(tmp_path / "ckpt-000097.safetensors")
    assert boundary_checkpoint(str(tmp_path), 0.5) == str(tmp_path / "ckpt-000064.safetensors")
    # the trainer rounds 0.75 x 129 = 96.75 to step 97: that checkpoint starts the last 25 %
    assert boundary_checkpoint(str(tmp_path), 0.25) == str(tmp_path / "ckpt-000097.safetensors")
    assert boundary_checkpoint("models:/x/1", 0.1) == "models:/x/1"
    with pytest.raises(CurationError, match="no checkpoint at or before step 13"):
        boundary_checkpoint(str(tmp_path), 0.9)
