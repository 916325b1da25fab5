"""Verdict and power statement of the query test against hand-computed values and scipy's own tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from curation.provenance.verdict import DECISIVE, bank_needed, examples_needed, query_verdict, text_verdict


def test_examples_needed_from_a_known_rho():
    # (3.0902 / 0.05)^2 + 1 = 3820.8 -> 3821 examples
    assert examples_needed(-0.05) == 3821
    assert examples_needed(-0.15) == math.ceil((stats.norm.isf(1e-3) / 0.15) ** 2 + 1) == 426
    assert examples_needed(0.02) == math.inf and examples_needed(0.0) == math.inf


def test_examples_needed_gives_p_of_about_alpha_for_a_spearman_test_of_that_size():
    """A sample with Spearman rho exactly -0.05 at the computed n gets scipy's one-sided p close to 1e-3."""
    n = int(examples_needed(-0.05))
    t = -0.05 * math.sqrt((n - 2) / (1 - 0.05**2))  # scipy's t approximation for Spearman
    assert stats.t.cdf(t, n - 2) == pytest.approx(DECISIVE, rel=0.1)


def test_bank_needed_is_the_first_bank_size_reaching_alpha():
    for z in (3.5, 4.0, 6.0, 12.0):
        m = int(bank_needed(z))

        def p(k: int, z: float = z) -> float:
            return stats.t.sf(z * math.sqrt(k / (k + 1)), k - 1)

        assert p(m) <= DECISIVE and (m == 2 or p(m - 1) > DECISIVE)
    assert bank_needed(3.0) == math.inf  # below z_alpha = 3.09 no bank is enough: p -> 1 - Phi(z) > 1e-3
    assert bank_needed(-1.0) == math.inf


def test_verdict_requires_every_p_value_and_says_what_size_would_do():
    decisive = query_verdict(-0.2, 1e-8, 2000, null_z=9.0, null_p_t=1e-5, n_null=9)
    assert decisive.code == 2 and decisive.verdict == "derived from our run (decisive)"
    assert decisive.p_verdict == 1e-5 and "reaches" not in decisive.statement
    weak_bank = query_verdict(-0.1, 1e-5, 2000, null_z=3.5, null_p_t=0.01, n_null=9)
    assert weak_bank.code == 1 and weak_bank.p_verdict == 0.01  # exact p alone would be decisive
    assert "exact p (1e-05) is decisive" in weak_bank.statement and "examples" not in weak_bank.statement
    assert f"{bank_needed(3.5):,.0f} null models (this bank: 9)" in weak_bank.statement
    assert "999 models" in weak_bank.statement  # rank p floor 1/(M+1)
    weak_both = query_verdict(-0.1, 0.01, 2000, null_z=2.5, null_p_t=0.03, n_null=9)
    assert "n = 956 examples (this test: 2,000)" in weak_both.statement  # (3.09 / 0.1)^2 + 1 = 955.9
    assert "z = 2.50 is below 3.09: no bank size" in weak_both.statement
    absent = query_verdict(0.03, 0.91, 2000, null_z=-1.0, null_p_t=0.8, n_null=9)
    assert absent.code == 0 and absent.verdict == "not shown" and "no recency imprint" in absent.statement
    assert absent.summary() == {"verdict_code": 0.0, "p_verdict": 0.91}  # only finite sizes become metrics
    no_bank = query_verdict(-0.05, 0.01, 2000)
    assert no_bank.code == 1 and math.isnan(no_bank.bank_needed) and "null models" not in no_bank.statement


def test_verdict_of_independent_rank_data_is_rarely_positive():
    """Under H0 (independent values) the verdict says 'not shown' in about 95 % of draws (binomial sd 0.015)."""
    rng = np.random.default_rng(3)
    codes = []
    for _ in range(200):
        res = stats.spearmanr(rng.permutation(300), rng.normal(size=300), alternative="less")
        codes.append(query_verdict(float(res.statistic), float(res.pvalue), 300).code)
    assert np.mean(np.array(codes) == 0) >= 0.90 and np.mean(np.array(codes) == 2) <= 0.01


def _retrain_row(z: float, k: int, n_tokens: int = 480) -> dict:
    """A test (b) row with the Student and exact rank p-values that ``order_test`` gives at ``z`` and ``K = k``
    (the rank p at its best: the original order above every reshuffle)."""
    p_t = float(stats.t.sf(z * math.sqrt(k / (k + 1)), k - 1))
    return {"method": "retrain", "statistic": z, "p_value": p_t, "p_t": p_t, "p_rank": 1 / (k + 1),
            "n_tokens": n_tokens, "n_reshuffles": k}


def test_text_verdict_of_a_small_retrain_test_is_never_decisive_and_names_the_size():
    """The demo's suspect texts: K = 9 reshuffles put the exact rank p at 0.1 or above, so neither text can even
    show evidence, however small the Student p (the independent text's 0.042 is not read as evidence)."""
    v = text_verdict(_retrain_row(2.08, 9))
    assert v.code == 0 and v.p_verdict == pytest.approx(0.1) and v.reshuffles_needed == 999
    # z at which the Student p with K = 999 reaches 1e-3: t_{998}.isf(1e-3) * sqrt(1000 / 999) = 3.100
    z_need = stats.t.isf(1e-3, 998) * math.sqrt(1000 / 999)
    assert z_need == pytest.approx(3.100, abs=1e-3)
    assert v.tokens_needed == math.ceil(480 * (z_need / 2.08) ** 2) == 1067  # 480 x 2.221 = 1066.2
    assert "K = 9 reshuffles" in v.statement and "K >= 999" in v.statement and "1,067 tokens" in v.statement
    assert "under independence it does not" in v.statement


def test_text_verdict_needs_both_p_values_and_reads_no_order_as_no_size():
    decisive = text_verdict(_retrain_row(4.0, 999))
    assert decisive.code == 2 and decisive.p_verdict == pytest.approx(1e-3)  # rank p 1/1000 binds, Student 3.2e-5
    evidence = text_verdict(_retrain_row(2.5, 99))  # Student p 0.0073, rank p 0.01: evidence, not decisive
    assert evidence.code == 1 and evidence.verdict == "evidence of derivation (not decisive)"
    assert stats.t.sf(2.5 * math.sqrt(99 / 100), 98) < evidence.p_verdict == pytest.approx(0.01)  # rank p binds
    against = text_verdict(_retrain_row(-0.7, 999))
    assert against.code == 0 and against.tokens_needed == math.inf and "no size of test" in against.statement


def test_text_verdict_of_the_overlap_test():
    none = text_verdict({"method": "overlap", "statistic": 0.0, "p_value": 1.0, "p_rank": 1.0, "n_tokens": 480})
    assert none.code == 0 and "no span of the text occurs" in none.statement and math.isnan(none.tokens_needed)
    strong = text_verdict({"method": "overlap", "statistic": 0.3, "p_value": 1e-6, "p_rank": 1 / 1000,
                           "n_tokens": 5000})
    assert strong.code == 2 and strong.p_verdict == pytest.approx(1e-3)  # the permutation p binds
