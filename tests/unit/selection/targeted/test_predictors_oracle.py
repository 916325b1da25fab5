"""The probe oracle per reference batch and its test-retest reliability against known noise; MATES recovers an
oracle that is a known function of its features; gradient features predict held-out one-step-probe labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.targeted.oracle import oracle_reliability, probe_label_batches
from curation.selection.targeted.predictors import (
    MATESPredictor,
    PredictorConfig,
    gradient_embeddings,
    one_step_probe_labels,
    rank_normal,
    spearman,
)


def _gpt():
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=32, block_size=24))
    return adapter, adapter.build_model()


def test_probe_label_batches_equal_separate_probes_and_their_union() -> None:
    adapter, model = _gpt()
    cands = pl.DataFrame({"text": ["hello there", "1+1=2;2+2=4", "zzzz", "the end"]})
    a = pl.DataFrame({"text": ["3+4=7;", "hello you"]})
    b = pl.DataFrame({"text": ["5+5=10;", "good day", "zzz zz"]})
    both = probe_label_batches(adapter, model, cands, [a, b], lr=0.5)
    assert both.shape == (4, 2)
    np.testing.assert_allclose(both[:, 0], one_step_probe_labels(adapter, model, cands, a, lr=0.5), atol=1e-6)
    np.testing.assert_allclose(both[:, 1], one_step_probe_labels(adapter, model, cands, b, lr=0.5), atol=1e-6)
    union = one_step_probe_labels(adapter, model, cands, pl.concat([a, b]), lr=0.5)
    np.testing.assert_allclose(both @ np.array([2, 3]) / 5, union, atol=1e-6)


def test_oracle_reliability_matches_known_noise() -> None:
    """Labels = signal + independent N(0, 1) noise per batch, signal N(0, 1): a single batch has Pearson
    reliability 1/2, i.e. Spearman (6/pi) asin(1/4) = 0.483 for normals; the two-batch halves 2/3 -> 0.649."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=4000)
    labels = signal[:, None] + rng.normal(size=(4000, 4))
    rel = oracle_reliability(labels)
    # over seeds 0-19: |single_batch - 0.483| <= 0.019, |split_half - 0.649| <= 0.022
    assert abs(rel["single_batch"] - 6 / np.pi * np.arcsin(0.25)) < 0.04
    assert abs(rel["split_half"] - 6 / np.pi * np.arcsin(1 / 3)) < 0.035
    # the ceiling is what the noise-free signal itself reaches against the 4-batch mean
    # over seeds 0-19: |ceiling - spearman(signal, mean)| <= 0.007
    assert abs(rel["ceiling"] - spearman(signal, labels.mean(1))) < 0.025
    assert rel["full"] == pytest.approx(2 * rel["split_half"] / (1 + rel["split_half"]))


@pytest.mark.parametrize("transform", ["zscore", "rank"])
def test_mates_recovers_an_oracle_that_is_a_known_function_of_its_features(transform: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    w = rng.normal(size=16)
    oracle = x @ w + np.tanh(2 * x[:, 0])  # a smooth known function, no noise
    labelled, held = np.arange(400), np.arange(400, 1000)
    model = MATESPredictor(PredictorConfig(label_transform=transform, learning_rate=1e-3, weight_decay=1e-2,
                                           epochs=300)).fit(x[labelled], oracle[labelled])
    rho = spearman(model.predict(x[held]), oracle[held])
    # over seeds 0-19 of the data: zscore 0.984-0.995, rank 0.984-0.995
    assert rho > 0.95, rho


def test_rank_normal_is_monotone_and_standard() -> None:
    values = np.array([5.0, -1.0, 100.0, 0.0])
    out = rank_normal(values)
    assert list(np.argsort(out)) == list(np.argsort(values))
    assert abs(out.mean()) < 1e-12 and out[2] == pytest.approx(-out[1])


def _probe_pool(seed: int):
    rng = np.random.default_rng(seed)
    math = [f"{a}+{b}={a + b};" for a, b in rng.integers(10, 99, (40, 2))]
    words = ["stone", "river", "light", "house", "green", "road"]
    prose = [" ".join(rng.choice(words, int(rng.integers(2, 6)))) for _ in range(120)]
    pool = pl.DataFrame({"example_id": [f"r{i}" for i in range(160)], "text": math + prose})
    ref = pl.DataFrame({"text": [f"{a}+{b}={a + b};" for a, b in rng.integers(10, 99, (8, 2))]})
    return pool, ref


def test_gradient_features_predict_held_out_probe_labels() -> None:
    adapter, model = _gpt()
    pool, ref = _probe_pool(2)
    mates = MATESPredictor(PredictorConfig(sample_fraction=0.25, probe_lr=0.5, features="gradient",
                                           label_transform="rank", learning_rate=1e-3, weight_decay=1e-2,
                                           epochs=300))
    out = mates.refresh(adapter, model, pool, ref)
    held = out["oracle_label"].is_null().to_numpy()
    oracle = one_step_probe_labels(adapter, model, pool.filter(pl.Series(held)), ref, lr=0.5)
    rho = spearman(out["score"].to_numpy()[held], -oracle)
    # over seeds 0-19 (model, data, sample): 0.66-0.97, median 0.89 (text features in test_predictors.py on
    # the same kind of pool: 0.46-0.93, median 0.78)
    assert rho >= 0.55, rho
    # the split-half agreement of the two reference halves is reported with the round
    assert -1 <= mates.stats["oracle_split_half_spearman"] <= 1
    assert gradient_embeddings(adapter, model, pool[:5], dim=16).shape == (5, 18)

