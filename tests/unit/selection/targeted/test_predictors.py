"""Learned influence predictors: the one-step probe equals a hand-made SGD step; MATES and NN-CIFT reach a held-out
Spearman with their oracle labels on planted structure; a probe-driven refresh predicts held-out probe labels."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import torch

from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.targeted.predictors import (
    MATESPredictor,
    NNCIFTPredictor,
    PredictorConfig,
    one_step_probe_labels,
    spearman,
    text_embeddings,
)


def _gpt():
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=32, block_size=24))
    return adapter, adapter.build_model()


def test_one_step_probe_equals_a_manual_sgd_step() -> None:
    adapter, model = _gpt()
    cands = pl.DataFrame({"text": ["hello there", "1+1=2;2+2=4", "zzzz"]})
    ref = pl.DataFrame({"text": ["3+4=7;", "hello you"]})
    labels = one_step_probe_labels(adapter, model, cands, ref, lr=0.5)
    tracked = tuple(f"{m}." for m in adapter.tracked_modules(model))
    with torch.no_grad():
        base = adapter.example_losses(model, adapter.collate(ref)).mean().item()
    for i in range(3):
        m = copy.deepcopy(model)
        loss = adapter.example_losses(m, adapter.collate(cands[i:i + 1]))[0]
        params = [p for n, p in m.named_parameters() if n.startswith(tracked)]
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= 0.5 * g
            after = adapter.example_losses(m, adapter.collate(ref)).mean().item()
        assert abs(labels[i] - (after - base)) < 1e-5


def test_mates_held_out_spearman_on_a_planted_function() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(1000, 16)).astype(np.float32)
    oracle = np.tanh(emb[:, 0] * 2) - 0.5 * emb[:, 1] ** 2 + 0.1 * rng.normal(size=1000)
    labelled = rng.choice(1000, 200, replace=False)
    held = np.setdiff1d(np.arange(1000), labelled)
    pred = MATESPredictor(PredictorConfig(epochs=300, learning_rate=1e-2, label_transform="zscore")).fit(
        emb[labelled], oracle[labelled])
    rho = spearman(pred.predict(emb[held]), oracle[held])
    # over seeds 0-19 of the data: held-out Spearman 0.73-0.87
    assert rho >= 0.7, rho


def test_nn_cift_held_out_spearman_on_planted_pairwise_influence() -> None:
    rng = np.random.default_rng(1)
    train, target = rng.normal(size=(300, 8)), rng.normal(size=(10, 8))
    a = rng.normal(size=(8, 8))
    values = np.tanh(train @ a @ target.T / 3)
    labelled, held = np.arange(90), np.arange(90, 300)  # u = 30% labelled, as in NN-CIFT's study range
    model = NNCIFTPredictor(PredictorConfig(epochs=400, learning_rate=1e-2)).fit(train[labelled], target,
                                                                                values[labelled])
    pred = model.predict(train[held], target)
    rho = spearman(pred.ravel(), values[held].ravel())
    # over seeds 0-19 of the data: held-out Spearman 0.94-0.97
    assert rho >= 0.75, rho


def test_text_embeddings_put_near_duplicates_together() -> None:
    texts = ["the quick brown fox jumps", "the quick brown fox jumped", "def f(x): return x + 1",
             "def g(y): return y + 2", "2+2=4;3+3=6;", "4+4=8;5+5=10;"]
    emb = text_embeddings(texts, dim=16)  # capped at n - 1 = 5 components
    sim = emb @ emb.T
    for i in (0, 2, 4):
        others = [j for j in range(6) if j not in (i, i + 1)]
        assert sim[i, i + 1] > sim[i, others].max()


def test_refresh_predicts_held_out_probe_labels() -> None:
    adapter, model = _gpt()
    rng = np.random.default_rng(2)
    math = [f"{a}+{b}={a + b};" for a, b in rng.integers(10, 99, (40, 2))]
    words = ["stone", "river", "light", "house", "green", "road"]
    prose = [" ".join(rng.choice(words, 5)) for _ in range(120)]
    pool = pl.DataFrame({"example_id": [f"r{i}" for i in range(160)], "text": math + prose})
    ref = pl.DataFrame({"text": [f"{a}+{b}={a + b};" for a, b in rng.integers(10, 99, (6, 2))]})
    mates = MATESPredictor(PredictorConfig(sample_fraction=0.25, epochs=200, learning_rate=1e-2, probe_lr=0.5,
                                           features="text", label_transform="zscore"))  # the measured setting
    out = mates.refresh(adapter, model, pool, ref)
    probed = out.with_row_index().filter(pl.col("oracle_label").is_not_null())
    is_math = probed["index"].to_numpy() < 40
    labels = probed["oracle_label"].to_numpy()
    # ground truth: one step on a math row lowers the math reference loss more than a step on a prose row
    assert labels[is_math].mean() < labels[~is_math].mean()
    # the predictor against the oracle on the rows it never saw (the held-out Spearman)
    held = out["oracle_label"].is_null().to_numpy()
    oracle = one_step_probe_labels(adapter, model, pool.filter(pl.Series(held)), ref, lr=0.5)
    rho = spearman(out["score"].to_numpy()[held], -oracle)
    # over seeds 0-19 (model, data, sample): 0.46-0.93, median 0.78, >= 0.6 on 18 of 20
    assert rho >= 0.35, rho
    assert mates.stats["probed"] == 40 and mates.stats["oracle_s"] > 0
