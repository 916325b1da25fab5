"""Stage provenance_suspects in process on a tiny GPT: every model it saves is the one its seed defines (the
reference, the independent suspect and each null-bank model equal ``train_from_scratch`` of their job), the derived
suspect continues our checkpoint, and the suspect texts and MLflow run are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from curation.config import load
from curation.models.base import adapter_model_config, load_adapter_model
from curation.models.checkpoints import CheckpointInfo, load_checkpoint, save_checkpoint
from curation.models.gpt import ByteGPTAdapter
from curation.provenance.config import ProvenanceSuspectsConfig
from curation.provenance.retrain import OrderedTrainConfig, ScratchModel, train_from_scratch
from curation.provenance.testbed import TINY_GPT

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]


def text_table(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"example_id": np.arange(n, dtype=np.int64),
                         "text": [" ".join(rng.choice(WORDS, size=8)) for _ in range(n)]})


@pytest.fixture
def project(mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(mlflow_store)
    text_table(48, 0).write_parquet("train.parquet")
    text_table(24, 1).write_parquet("val.parquet")
    adapter = ByteGPTAdapter(TINY_GPT)
    torch.manual_seed(0)
    info = CheckpointInfo(adapter=adapter.name, model_config=adapter_model_config(adapter), step=6, learning_rate=3e-3)
    save_checkpoint(Path("ours.safetensors"), adapter.build_model().state_dict(), info)
    return mlflow_store


def test_stage_saves_the_models_its_seeds_define(project: Path) -> None:
    from curation.stages.provenance_suspects import main

    recipe = {"learning_rate": 3e-3, "batch_size": 16}
    cfg = load(ProvenanceSuspectsConfig, {
        "train_data": "train.parquet", "other_data": "val.parquet", "base_checkpoint": "ours.safetensors",
        "derive_rows": 8, "derive": {"learning_rate": 3e-4, "batch_size": 4}, "reference_train": recipe,
        "small_model": {"n_layer": 1, "n_head": 1, "d_model": 16, "block_size": 64}, "small_train": recipe,
        "null_models": 2, "null_seed": 100, "text_prompts": 2, "text_chars": 8, "out_dir": "out"})
    main(cfg)
    out = Path("out")
    assert sorted(p.name for p in (out / "nulls").iterdir()) == ["null_00.safetensors", "null_01.safetensors"]
    train = pl.read_parquet("train.parquet")
    adapter = ByteGPTAdapter(TINY_GPT)
    for name, seed, arch in [("reference", 1, adapter), ("independent", 2, ByteGPTAdapter(cfg.small_model)),
                             ("nulls/null_01", 101, adapter)]:
        saved = load_checkpoint(out / f"{name}.safetensors")[0]
        expected = train_from_scratch(ScratchModel(name, seed, arch, OrderedTrainConfig(**recipe)), frame=train)
        assert saved.keys() == expected.keys()
        for key in saved:
            torch.testing.assert_close(saved[key], expected[key], rtol=0, atol=0)  # same process, same threads
    _, derived, _ = load_adapter_model(str(out / "derived.safetensors"))
    _, base, _ = load_adapter_model("ours.safetensors")
    moved = [float((a - b).abs().max()) for a, b in zip(derived.state_dict().values(), base.state_dict().values())]
    assert max(moved) > 0  # continued training changed our weights
    for name in ("derived", "independent"):
        texts = pl.read_parquet(out / f"{name}_text.parquet")
        assert texts.height == 2 and texts["text"].str.len_chars().min() > 0
    metrics = json.loads(Path("metrics/provenance_suspects.json").read_text())
    assert metrics["from_scratch_rows"] == 48 and metrics["derived_rows"] == 8


def test_train_from_scratch_is_a_pure_function_of_its_job() -> None:
    frame = text_table(32, 3)
    job = ScratchModel("x", 7, ByteGPTAdapter(TINY_GPT), OrderedTrainConfig(learning_rate=3e-3, batch_size=8))
    a, b = train_from_scratch(job, frame=frame), train_from_scratch(job, frame=frame)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train_from_scratch(ScratchModel("x", 8, job.adapter, job.recipe), frame=frame)
    assert any(not torch.equal(a[k], other[k]) for k in a)
