"""Palimpsest query test against ground truth: tiny GPTs trained here on the shared multi-domain corpus.

A model derived from ours (continued training on other text) must be detected; independently trained null models
(other seeds and orders) must give uniform p-values, and a null bank must calibrate the test against one shared
reference. The >= 20-null version and the observational test (b) run in benchmarks/provenance/run.py.

The tests run one bed (our run "alice" with seed 0). Every threshold is set from the same bed repeated over alice
seeds 0-19 (benchmarks/provenance/bed_seeds.py, results/bed_seeds.json; reference and null models shared, only
alice and its derived model retrained): each comment gives seed 0's value and the range over the seeds. Alice's
seed 1 run stalls (mean loss 3.21; its order leaves no trace even in alice itself), so the derived-model thresholds
hold over the 19 seeds whose run trained; test_our_run_trained names that precondition. Thresholds on shares of
10 independent models (which share structure, so one order moves them together) are the seeds' max + one model.
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


def test_our_run_trained(bed):
    """Precondition of the derived-model tests: a run that stalls carries no trace of its order. Mean loss over
    seeds 0-19: seed 0 2.76, the 19 trained runs 2.65-3.03; seed 1 stalled at 3.21 (rho of alice itself +0.02)."""
    adapter, train, _, alice, _ = bed
    assert example_losses(adapter, alice.model, train)["loss"].mean() < 3.1


def test_model_derived_from_ours_is_detected(bed):
    adapter, train, other, alice, ref_loss = bed
    derived = train_in_order(adapter, alice.model, other.head(80), FINETUNE)  # 10 steps of fine-tuning
    res = query_test(alice.positions, example_losses(adapter, derived, train), ref_loss, n_permutations=199)
    assert res.n == train.height > 2000
    # over the 19 trained seeds of 0-19 (one reference: its own noise is in every difference, so the spread is
    # wide): rho seed 0 -0.140, max -0.040 (seed 18); p seed 0 4.8e-11, median 1.9e-5, max 0.032 (seed 18; p <= 1e-6
    # held on 8/20 seeds); permutation p at its floor 1/200 on 17/19, max 0.04 (seed 18)
    assert res.statistic < 0
    assert res.p_value <= 0.05
    assert res.p_permutation <= 0.05


@pytest.fixture(scope="module")
def null_losses(bed):
    """Per-example losses of 2 * N_NULL_TRIALS independently trained models (seeds 1000, 1001, ...)."""
    adapter, train, *_ = bed
    return [example_losses(adapter, train_run(train, seed=1000 + j, cfg=NULL).model, train)
            for j in range(2 * N_NULL_TRIALS)]


def test_independent_models_give_uniform_p_values(bed, null_losses):
    _, _, _, alice, _ = bed
    p_values = []
    for j in range(N_NULL_TRIALS):  # disjoint (suspect, reference) pairs keep the trials independent
        res = query_test(alice.positions, null_losses[2 * j], null_losses[2 * j + 1], n_permutations=99)
        p_values.append(res.p_value)
    p_values = np.array(p_values)
    # over seeds 0-19 (our order only moves these): KS p seed 0 0.19, min 0.014 (seed 3), next 0.085; FPR at 0.05
    # seed 0 0.1, median 0.05, max 0.5 (seed 3; 0.2 on seeds 11, 14), pooled over the 20 orders 0.08
    assert stats.kstest(p_values, "uniform").pvalue > 0.01, p_values
    assert np.mean(p_values <= 0.05) <= 0.6, p_values


def test_null_bank_calibrates_the_test_against_one_shared_reference(bed, null_losses):
    """The product's setting: one reference for every suspect. Independent models trained with another recipe
    than the reference share a skill profile that our order can correlate with by chance, so against some orders
    many get a small exact p (seed 0: 7/10; over seeds 0-19: 0-0.7, >= 0.3 on seeds 0, 3, 11, 19 only, pooled
    0.11, so it is not asserted); a bank of such models (half of them) calibrates the other half and the derived
    one."""
    adapter, train, other, alice, ref_loss = bed
    bank, tested = null_losses[:N_NULL_TRIALS], null_losses[N_NULL_TRIALS:]
    results = [query_test(alice.positions, m, ref_loss, null_losses=bank, n_permutations=1) for m in tested]
    # bank p_t <= 0.05 over seeds 0-19: seed 0 0/10, <= 0.1 on 19/20, max 0.3 (seed 5), pooled 0.035
    assert np.mean([r.null.p_t <= 0.05 for r in results]) <= 0.4
    derived = train_in_order(adapter, alice.model, other.head(80), FINETUNE)
    res = query_test(alice.positions, example_losses(adapter, derived, train), ref_loss, null_losses=bank,
                     n_permutations=1)
    # over the 19 trained seeds: below every independent model on all 19; z seed 0 6.8, median 7.4, min 2.07
    # (seed 11; 2.32 seed 18, then 3.87); p_t seed 0 5.4e-5, max 0.040 (seed 11; 0.027 seed 18, then 2.5e-3)
    assert res.null.p_rank == pytest.approx(1 / (N_NULL_TRIALS + 1))
    assert res.null.z > 1.5 and res.null.p_t <= 0.1


def test_ensemble_reference_detects_the_derived_model_and_not_the_independent_ones(bed, null_losses):
    """The demo's setting (``ensemble_reference``): every model centred on the mean loss of suspect, reference and
    bank. The derived model stays far beyond the bank; the independent models are exchangeable with it."""
    adapter, train, other, alice, ref_loss = bed
    bank, tested = null_losses[:N_NULL_TRIALS], null_losses[N_NULL_TRIALS:]
    derived = train_in_order(adapter, alice.model, other.head(80), FINETUNE)
    res = query_test(alice.positions, example_losses(adapter, derived, train), ref_loss, null_losses=bank,
                     ensemble_reference=True, n_permutations=1)
    # (the bank here mixes the reference's recipe, batch 16, with the nulls', batch 32; the demo's bank matches its
    # reference.) Over the 19 trained seeds of 0-19: below every bank model on all 19; rho seed 0 -0.123, median
    # -0.101, max -0.058 (seed 11; -0.063 seed 6, -0.071 seed 19); p seed 0 6.3e-9, median 1.7e-6, max 4.0e-3
    # (seed 11; 1.7e-3 seed 6); z seed 0 4.86, median 5.8, min 2.28 (seed 11; 2.78 seed 19); p_t seed 0 4.5e-4,
    # max 0.027 (seed 11; 0.012 seed 19). The former thresholds (rho < -0.08, p <= 1e-5, z > 3, p_t <= 0.01) were
    # seed 0's and failed on 2-5 of the trained seeds.
    assert res.null.p_rank == pytest.approx(1 / (N_NULL_TRIALS + 2))  # the reference joined the bank
    assert res.statistic < -0.04 and res.p_value <= 0.01
    assert res.null.z > 1.5 and res.null.p_t <= 0.1
    results = [query_test(alice.positions, m, ref_loss, null_losses=bank, ensemble_reference=True, n_permutations=1)
               for m in tested]
    # independent models over seeds 0-19: bank p_t <= 0.05 seed 0 0/10, median 0, max 0.4 (seed 11; 0.3 seed 12),
    # pooled 0.075; exact p <= 0.05 seed 0 0/10, median 0, max 0.4 (seeds 3, 11), pooled 0.085
    assert np.mean([r.null.p_t <= 0.05 for r in results]) <= 0.5
    assert np.mean([r.p_value <= 0.05 for r in results]) <= 0.5
