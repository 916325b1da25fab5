"""featurize: features equal projected per-example gradients; an interrupted run resumes bit-identically."""

import numpy as np
import polars as pl
import pytest
import torch

from curation.errors import StoreMismatchError
from curation.gradients import FeaturizeConfig, ProjectionConfig, Projector, featurize, per_example_gradients
from curation.gradients.store import GradientStore
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig


def _digits_like(n: int = 70) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({
        "example_id": [f"e{i}" for i in range(n)],
        "features": rng.random((n, 8)).tolist(),
        "label": rng.integers(0, 3, n),
    })


def _mlp_checkpoints() -> tuple[MLPClassifierAdapter, dict]:
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=8, n_classes=3, hidden=(16,)))
    models = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        models[str(seed)] = adapter.build_model().eval()
    return adapter, models



def interrupt_store_writes(monkeypatch: pytest.MonkeyPatch, *, at: int) -> None:
    """Make the ``at``-th ``GradientStore.write`` raise KeyboardInterrupt, as a killed run would."""
    original = GradientStore.write
    calls = {"n": 0}

    def crashing_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt("simulated kill")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GradientStore, "write", crashing_write)

CFG = FeaturizeConfig(projection=ProjectionConfig(kind="gaussian", dim=24, seed=5), shard_size=16, batch_size=5)


def test_features_equal_projected_gradients(tmp_path) -> None:
    adapter, models = _mlp_checkpoints()
    frame = _digits_like()
    store = featurize(adapter, models, frame, str(tmp_path / "g"), CFG, show_progress=False)
    for cid, model in models.items():
        batch = adapter.collate(frame)
        grads = per_example_gradients(adapter, model, batch).detach()
        expected = Projector(grads.shape[1], CFG.projection)(grads)
        np.testing.assert_allclose(store.grads(cid), expected.numpy(), rtol=1e-4, atol=1e-6)
        with torch.no_grad():
            np.testing.assert_allclose(store.values(cid), adapter.example_losses(model, batch).numpy(), rtol=1e-5)


def test_interrupted_run_resumes_bit_identically(tmp_path, monkeypatch) -> None:
    adapter, models = _mlp_checkpoints()
    frame = _digits_like()
    full = featurize(adapter, models, frame, str(tmp_path / "full"), CFG, show_progress=False)

    original = GradientStore.write
    interrupt_store_writes(monkeypatch, at=7)  # 5 shards per checkpoint: dies inside the second checkpoint
    with pytest.raises(KeyboardInterrupt):
        featurize(adapter, models, frame, str(tmp_path / "resumed"), CFG, show_progress=False)
    monkeypatch.setattr(GradientStore, "write", original)
    partial = GradientStore(tmp_path / "resumed", full.metadata, n_rows=frame.height, dim=full.dim)
    assert partial.is_complete("0") and partial.pending("1").tolist() == list(range(16, 70))

    written = []
    monkeypatch.setattr(GradientStore, "write", lambda self, c, s, *a: (written.append((c, s)), original(self, c, s, *a)))
    resumed = featurize(adapter, models, frame, str(tmp_path / "resumed"), CFG, show_progress=False)
    assert written == [("1", 16), ("1", 32), ("1", 48), ("1", 64)]  # only the missing shards ran
    for cid in models:
        assert resumed.grads(cid).tobytes() == full.grads(cid).tobytes()
        assert resumed.values(cid).tobytes() == full.values(cid).tobytes()


def test_changed_table_or_projection_is_refused(tmp_path) -> None:
    adapter, models = _mlp_checkpoints()
    frame = _digits_like()
    featurize(adapter, models, frame, str(tmp_path), CFG, show_progress=False)
    with pytest.raises(StoreMismatchError, match="data_digest"):
        featurize(adapter, models, frame.with_columns(pl.col("label").reverse()), str(tmp_path), CFG)
    other = FeaturizeConfig(projection=ProjectionConfig(kind="gaussian", dim=24, seed=6), shard_size=16, batch_size=5)
    with pytest.raises(StoreMismatchError, match="projection"):
        featurize(adapter, models, frame, str(tmp_path), other)


def test_gpt_features_with_sparse_projection(tmp_path) -> None:
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=12))
    torch.manual_seed(0)
    model = adapter.build_model().eval()
    frame = pl.DataFrame({"example_id": [1, 2, 3], "text": ["hello world", "def f(x):", "MIT License"]})
    cfg = FeaturizeConfig(projection=ProjectionConfig(kind="sjlt", dim=64), shard_size=2, batch_size=2,
                          target="measurement", modules=("blocks.0.fc", "head"))
    store = featurize(adapter, {"a": model}, frame, str(tmp_path), cfg, show_progress=False)
    grads = per_example_gradients(adapter, model, adapter.collate(frame), modules=["blocks.0.fc", "head"]).detach()
    expected = Projector(grads.shape[1], cfg.projection)(grads)
    np.testing.assert_allclose(store.grads("a"), expected.numpy(), rtol=1e-4, atol=1e-6)
