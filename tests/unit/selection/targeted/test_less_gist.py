"""LESS and GIST on a byte GPT and on the HF causal-LM adapter: Adam update formula by hand, LR-weighted
checkpoints, planted task-relevant pool rows recovered from a few targets, GIST storage of r numbers per row."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

pytest.importorskip("peft")

from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.targeted.features import FeatureConfig, adam_update, compute_features
from curation.selection.targeted.gist import GISTConfig, gist_coordinates, gist_scores, target_subspace
from curation.selection.targeted.less import less_scores
from curation.selection.targeted.warmup import WarmupConfig, warmup_lora

N_PLANTED = 8


def _pool() -> tuple[pl.DataFrame, pl.DataFrame]:
    """64 pool rows: 8 planted rows in the target's style (arithmetic lines) among 56 rows of prose."""
    rng = np.random.default_rng(0)
    words = ["the", "a", "river", "stone", "house", "light", "green", "quiet", "morning", "road", "field", "wind"]
    prose = [" ".join(rng.choice(words, 8)) for _ in range(56)]
    planted = [f"{a}+{b}={a + b};{b}+{a}={a + b};" for a, b in rng.integers(10, 99, (N_PLANTED, 2))]
    texts = prose[:28] + planted + prose[28:]
    pool = pl.DataFrame({"example_id": [f"p{i}" for i in range(64)], "text": texts})
    targets = pl.DataFrame({"text": [f"{a}+{b}={a + b};" for a, b in rng.integers(10, 99, (5, 2))]
                            + [" ".join(rng.choice(words, 8)) for _ in range(5)],
                            "task": ["math"] * 5 + ["prose"] * 5})
    return pool, targets


def test_adam_update_matches_the_formula() -> None:
    g = torch.tensor([[0.5, -2.0, 0.0]])
    m, v = torch.tensor([0.1, 0.2, -0.3]), torch.tensor([0.01, 0.04, 0.09])
    m2 = 0.9 * m + 0.1 * g
    v2 = 0.999 * v + 0.001 * g**2
    torch.testing.assert_close(adam_update(g, m, v), m2 / torch.sqrt(v2 + 1e-8))


def _features(adapter, model, proj_dim: int = 0):
    pool, targets = _pool()
    warm = warmup_lora(adapter, model, pool, WarmupConfig(fraction=0.5, epochs=3, batch_size=8, learning_rate=5e-3,
                                                          lora_r=4, lora_alpha=16))
    return warm, compute_features(adapter, warm, pool, targets, FeatureConfig(proj_dim=proj_dim, batch_size=16))


def _byte_gpt():
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=2, n_head=2, d_model=32, block_size=32))
    torch.manual_seed(0)
    return adapter, adapter.build_model()


def test_less_recovers_planted_rows_on_byte_gpt() -> None:
    adapter, model = _byte_gpt()
    warm, feats = _features(adapter, model)
    # checkpoint weights = mean learning rate per epoch (linear decay: decreasing), normalised
    lrs = np.array([c.learning_rate for c in warm.checkpoints])
    np.testing.assert_allclose(feats.weights, lrs / lrs.sum())
    assert np.all(np.diff(lrs) < 0)
    # only LoRA parameters are trained and differentiated
    assert all("lora_" in n for n in warm.lora_names) and feats.n_params == sum(
        p.numel() for n, p in model.named_parameters() if "lora_" in n)
    scores = less_scores(feats)
    math_rank = np.argsort(-scores.per_task()[:, scores.task_names.index("math")])
    hits = len(set(math_rank[:N_PLANTED].tolist()) & set(range(28, 28 + N_PLANTED)))
    # over seeds 0-19 (pool, init, LoRA): 6-8 of the 8 planted rows in the top 8 (8 on 17 seeds); random: 1
    assert hits >= 5


def test_gist_stores_r_numbers_and_recovers_planted_rows() -> None:
    adapter, model = _byte_gpt()
    _, feats = _features(adapter, model, proj_dim=2048)
    coords = gist_coordinates(feats, GISTConfig(rank=3))
    assert coords.numbers_per_example == 3 * len(feats.train_sgd)
    scores = gist_scores(coords)
    math_rank = np.argsort(-scores.per_task()[:, scores.task_names.index("math")])
    hits = len(set(math_rank[:N_PLANTED].tolist()) & set(range(28, 28 + N_PLANTED)))
    # over seeds 0-19: 7-8 of the 8 planted rows in the top 8; random: 1
    assert hits >= 5


def test_target_subspace_keeps_the_energy_share() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0]
    v = (rng.normal(size=(10, 3)) * [10.0, 3.0, 0.1]) @ basis.T
    w = target_subspace(v, energy=0.9)
    sv = np.linalg.svd(v, compute_uv=False)
    share = np.cumsum(sv**2) / np.sum(sv**2)
    assert w.shape == (20, int(np.argmax(share >= 0.9)) + 1)
    assert share[w.shape[1] - 1] >= 0.9 and (w.shape[1] == 1 or share[w.shape[1] - 2] < 0.9)
    w3 = target_subspace(v, rank=3)
    # the rank-3 subspace reproduces the targets exactly (they live in a 3-d subspace)
    np.testing.assert_allclose(v @ w3 @ w3.T, v, atol=1e-9)


def test_less_on_the_hf_adapter_with_lora() -> None:
    pytest.importorskip("transformers")
    from curation.models.hf import HFCausalLMAdapter, HFCausalLMConfig

    adapter = HFCausalLMAdapter(HFCausalLMConfig(
        architecture={"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 256,
                      "n_positions": 64}, max_length=32, lora_r=4, lora_alpha=16, lora_target_modules=("c_attn",)))
    model = adapter.build_model()
    warm, feats = _features(adapter, model)
    assert warm.lora_names and all("lora_" in n for n in warm.lora_names)
    scores = less_scores(feats)
    math_rank = np.argsort(-scores.per_task()[:, scores.task_names.index("math")])
    hits = len(set(math_rank[:N_PLANTED].tolist()) & set(range(28, 28 + N_PLANTED)))
    # over seeds 0-19: 7-8 of the 8 planted rows in the top 8; random: 1
    assert hits >= 5
