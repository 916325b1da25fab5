"""Verdict and power statement of the query test against hand-computed values and scipy's own tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from curation.provenance.verdict import DECISIVE, bank_needed, examples_needed, query_verdict


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
