"""Palimpsest statistics on constructed data where the answer is known."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from scipy import stats

from curation.errors import CurationError
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.provenance.palimpsest import (
    last_phase,
    query_test,
    rank_correlation_test,
    retrain_test,
    span_overlap_counts,
    span_overlap_test,
)
from curation.provenance.retrain import OrderedTrainConfig, train_in_order


def test_permutation_p_value_equals_brute_force_over_scipy_spearman():
    rng = np.random.default_rng(0)
    position = rng.permutation(60).astype(float)
    value = -0.2 * position + rng.normal(size=60) * 10
    rho, p, p_perm, _ = rank_correlation_test(position, value, expect="less", n_permutations=200, seed=7)
    assert rho == pytest.approx(stats.spearmanr(position, value).statistic)
    assert p == pytest.approx(stats.spearmanr(position, value, alternative="less").pvalue)
    perm_rng = np.random.default_rng(7)  # the same permutations, each correlated by scipy
    ranks = stats.rankdata(position)
    brute = [stats.spearmanr(perm_rng.permutation(ranks), value).statistic for _ in range(200)]
    assert p_perm == pytest.approx((1 + sum(b <= rho + 1e-12 for b in brute)) / 201)


def test_permutation_null_is_uniform_for_independent_values():
    rng = np.random.default_rng(1)
    ps = [rank_correlation_test(rng.permutation(80).astype(float), rng.normal(size=80), expect="less",
                                n_permutations=99, seed=s)[2] for s in range(200)]
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert np.mean(np.array(ps) <= 0.05) <= 0.09


def test_query_test_detects_recency_and_uses_each_examples_own_position():
    rng = np.random.default_rng(2)
    n = 500
    ids = [f"e{i}" for i in range(n)]
    position = rng.permutation(n)
    difficulty = rng.normal(3.0, 1.0, size=n)  # shared by suspect and reference, removed by the difference
    suspect = difficulty - 0.002 * position + rng.normal(0, 0.1, size=n)
    reference = difficulty + rng.normal(0, 0.1, size=n)
    shuffled = rng.permutation(n)  # rows deliberately not sorted by position
    positions = pl.DataFrame({"example_id": [ids[i] for i in shuffled], "position": position[shuffled]})
    res = query_test(positions, pl.DataFrame({"example_id": ids, "loss": suspect}),
                     pl.DataFrame({"example_id": ids, "loss": reference}), n_permutations=99)
    assert res.n == n and res.statistic < -0.5 and res.p_value < 1e-20 and res.p_permutation == 0.01
    no_ref = query_test(positions, pl.DataFrame({"example_id": ids, "loss": suspect}), n_permutations=99)
    assert no_ref.statistic > res.statistic  # the reference strips difficulty, so the signal is clearer


def test_query_test_rejects_ambiguous_positions():
    losses = pl.DataFrame({"example_id": ["a", "b", "c"], "loss": [1.0, 2.0, 3.0]})
    with pytest.raises(CurationError, match="example_id' repeats at row 2"):
        query_test(pl.DataFrame({"example_id": ["a", "b", "a"], "position": [0, 1, 2]}), losses)
    with pytest.raises(CurationError, match="missing column 'position'"):
        query_test(pl.DataFrame({"example_id": ["a"]}), losses)


def test_span_overlap_counts_split_credit_between_owners():
    train = ["abcdefgh", "xxabcdyy", "zzzzzzzz"]
    counts = span_overlap_counts(train, ["abcd", "efgh", "qqqq"], n=4)
    np.testing.assert_allclose(counts, [0.5 + 1.0, 0.5, 0.0])


def test_span_overlap_test_finds_text_copied_from_late_examples():
    rng = np.random.default_rng(3)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz "))
    texts = ["".join(rng.choice(alphabet, size=40)) for _ in range(300)]
    train = pl.DataFrame({"example_id": range(300), "text": texts})
    positions = pl.DataFrame({"example_id": range(300), "position": rng.permutation(300)})
    late = positions.sort("position")["example_id"].to_list()
    # a suspect that reproduces spans of examples with probability rising with their position
    suspect = [texts[i][5:30] for k, i in enumerate(late) if rng.random() < k / 300]
    res = span_overlap_test(train, positions, suspect, n=12, n_permutations=99)
    assert res.statistic > 0.5 and res.p_value < 1e-10 and res.p_permutation == 0.01
    with pytest.raises(CurationError, match="no 12-character span"):
        span_overlap_test(train, positions, ["0123456789012345"], n=12)


def test_retrain_test_original_order_retrain_reproduces_the_run():
    torch.manual_seed(0)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=24))
    frame = pl.DataFrame({"example_id": range(40), "text": [f"example number {i} of the run" for i in range(40)]})
    positions = pl.DataFrame({"example_id": range(40), "position": np.random.default_rng(0).permutation(40)})
    phase = last_phase(frame, positions, 0.25)
    assert phase.height == 10
    assert phase["example_id"].to_list() == positions.sort("position")["example_id"].to_list()[30:]
    cfg = OrderedTrainConfig(learning_rate=1e-2, batch_size=5)
    boundary = adapter.build_model()
    texts = pl.DataFrame({"example_id": [0], "text": ["example number 3 of the run"]})
    res = retrain_test(adapter, boundary, phase, texts, cfg, n_reshuffles=3)
    run = train_in_order(adapter, boundary, phase, cfg)  # the original run, retrained by hand
    with torch.no_grad():
        expected = float(adapter.token_logprobs(run, adapter.collate(texts)).sum())
    assert res.original_loglik == pytest.approx(expected, abs=1e-4)
    assert len(res.reshuffled_loglik) == 3 and res.n_tokens == 24  # truncated to block_size
    assert res.p_rank in (0.25, 0.5, 0.75, 1.0)
    with pytest.raises(CurationError, match="fraction=1.5"):
        last_phase(frame, positions, 1.5)
