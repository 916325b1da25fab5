"""REMIND pieces against brute force: nearest-embedding table, text neighbours, landscape feature formulas."""

import numpy as np
import polars as pl
import pytest
import torch

from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.unlearning.remind import (
    RemindConfig,
    landscape_features,
    nearest_tokens,
    neighbour_losses,
    perturb,
    remind_features,
    remind_metrics,
)


def test_nearest_tokens_matches_brute_force() -> None:
    emb = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    table = nearest_tokens(emb, 3)
    for v in range(12):
        d = [(float((emb[v] - emb[u]).norm()), u) for u in range(12) if u != v]
        assert set(table[v].tolist()) == {u for _, u in sorted(d)[:3]}


def test_text_neighbours_replace_about_30_percent_with_near_bytes() -> None:
    torch.manual_seed(0)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=64))
    model = adapter.build_model()
    batch = adapter.collate(pl.DataFrame({"text": ["the quick brown fox jumps over the lazy dog " * 2]}))
    cfg = RemindConfig(top_k=5)
    table = nearest_tokens(model.tok.weight.detach(), 5)
    fractions = []
    for i in range(20):
        new, dist = perturb(adapter, model, batch, cfg, torch.Generator().manual_seed(i))
        changed = new["targets"] != batch["targets"]
        assert torch.equal(new["input_ids"][:, 1:], new["targets"][:, :-1])  # shifted consistently
        for t in changed[0].nonzero().flatten().tolist():
            assert new["targets"][0, t].item() in table[batch["targets"][0, t]].tolist()
        assert dist.item() == pytest.approx(changed.float().sum().item() / batch["target_mask"].sum().item())
        fractions.append(dist.item())
    assert 0.2 < np.mean(fractions) < 0.4


def test_landscape_feature_formulas() -> None:
    l0 = np.array([1.0])
    lk = np.array([[1.5, 2.0, 0.5]])
    dk = np.array([[0.5, 1.0, 0.5]])
    f = landscape_features(l0, lk, dk)
    inc = np.array([0.5, 1.0, -0.5])
    assert f["mean_loss_increment"][0] == pytest.approx(inc.mean())
    assert f["max_gradient"][0] == pytest.approx(1.0) and f["loss_variance"][0] == pytest.approx(lk.var())
    assert f["loss_volatility"][0] == pytest.approx(inc.std() / np.abs(inc).mean())
    assert f["local_curvature"][0] == pytest.approx(inc.mean() / np.mean(dk**2))


def test_gpt_remind_end_to_end_runs_and_is_seeded() -> None:
    torch.manual_seed(0)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=32))
    model = adapter.build_model()
    texts = [f"line {i}: some text number {i * 7}" for i in range(30)]
    pools = {s: pl.DataFrame({"example_id": [f"{s}{i}" for i in range(10)], "text": texts[j * 10 : j * 10 + 10]})
             for j, s in enumerate(("forget", "retain", "holdout"))}
    cfg = RemindConfig(n_neighbors=4, folds=2)
    a, b = remind_features(adapter, model, pools, cfg), remind_features(adapter, model, pools, cfg)
    assert a.equals(b) and a.height == 30
    l0, lk, _ = neighbour_losses(adapter, model, pools["forget"], cfg)
    assert lk.shape == (10, 4) and np.isfinite(lk).all() and not np.allclose(lk, l0[:, None])
    metrics = remind_metrics(a, cfg)
    assert 0 <= metrics["remind_auc_3class"] <= 1
