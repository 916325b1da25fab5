"""Palimpsest query test against ground truth: tiny GPTs trained here on the shared multi-domain corpus.

A model derived from ours (continued training on other text) must give p <= 1e-6; independently trained null
models (other seeds and orders) must give uniform p-values (KS p > 0.01) and FPR at alpha=0.05 <= 0.10.
The >= 20-null version and the observational test (b) run in benchmarks/provenance/run.py.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from curation.models.gpt import ByteGPTAdapter
from curation.provenance.palimpsest import example_losses, query_test
from curation.provenance.retrain import train_in_order
from curation.provenance.testbed import ALICE, FINETUNE, NULL, REFERENCE, TINY_GPT, passages, split, train_run

N_NULL_TRIALS = 10


@pytest.fixture(scope="module")
def bed(shared_data):
    corpus = pl.read_parquet(shared_data / "multidomain_corpus" / "corpus.parquet", columns=["doc_id", "domain", "text"])
    train, other = split(passages(corpus, chars=64, per_domain=500))
    adapter = ByteGPTAdapter(TINY_GPT)
    alice = train_run(train, seed=0, cfg=ALICE)
    reference = train_run(train, seed=101, cfg=REFERENCE)
    return adapter, train, other, alice, example_losses(adapter, reference.model, train)


def test_model_derived_from_ours_is_detected(bed):
    adapter, train, other, alice, ref_loss = bed
    derived = train_in_order(adapter, alice.model, other.head(80), FINETUNE)  # 10 steps of fine-tuning
    res = query_test(alice.positions, example_losses(adapter, derived, train), ref_loss, n_permutations=199)
    assert res.n == train.height > 2000
    assert res.statistic < 0
    assert res.p_value <= 1e-6
    assert res.p_permutation == pytest.approx(1 / 200)


def test_independent_models_give_uniform_p_values(bed):
    adapter, train, _, alice, _ = bed
    p_values = []
    for j in range(N_NULL_TRIALS):  # disjoint (suspect, reference) pairs keep the trials independent
        suspect = train_run(train, seed=1000 + 2 * j, cfg=NULL).model
        reference = train_run(train, seed=1001 + 2 * j, cfg=NULL).model
        res = query_test(alice.positions, example_losses(adapter, suspect, train),
                         example_losses(adapter, reference, train), n_permutations=99)
        p_values.append(res.p_value)
    p_values = np.array(p_values)
    assert stats.kstest(p_values, "uniform").pvalue > 0.01, p_values
    assert np.mean(p_values <= 0.05) <= 0.10, p_values
