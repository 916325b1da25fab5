"""Plain-word verdict of a palimpsest query test, and the size of test that would make it decisive.

A p-value alone does not tell a user whether "not significant" means "independent of our run" or "too small a
test to tell". The verdict requires every p-value the test reports to agree (the exact one, valid over our random
order, and the null bank's Student one, valid for this one order and reference), and the power statement turns
the observed effect into the size that would reach the decisive level:

- examples: for Spearman's rho, ``z = rho * sqrt(n - 1)`` is approximately standard normal under H0, so a true
  effect ``rho`` reaches the one-sided ``p <= alpha`` at ``n = (z_alpha / rho)^2 + 1`` (``z_alpha = 3.09`` for
  ``alpha = 1e-3``);
- null models: the bank's Student prediction p-value at bank z-score ``z`` with ``M`` models is
  ``1 - F_{t, M-1}(z sqrt(M / (M + 1)))``, which falls with ``M`` towards ``1 - Phi(z)``: the smallest ``M``
  that reaches ``alpha`` (none when ``z <= z_alpha``); the bank's exact rank p-value cannot go below
  ``1 / (M + 1)``, so it needs ``M >= 1 / alpha - 1`` models.

The observational tests of suspect *texts* get the same words (``text_verdict``): test (b) needs both its Student
prediction p and its exact rank p (floor ``1 / (K + 1)`` with ``K`` reshuffles) at the level, so a small ``K``
can never be decisive, and the statement names the reshuffles and, if ``z`` grows with the square root of the
amount of suspect text, the tokens that would be; test (a) needs its scipy and its permutation p.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats

DECISIVE = 1e-3  # the level at which a provenance claim is decisive (issue 18; the paper reports p <= 1e-8)
EVIDENCE = 0.05

VERDICTS = {2: "derived from our run (decisive)", 1: "evidence of derivation (not decisive)", 0: "not shown"}


@dataclass(frozen=True)
class Verdict:
    """One suspect's verdict and power statement."""

    code: int  # 2 decisive, 1 evidence, 0 not shown (the keys of ``VERDICTS``)
    p_verdict: float  # the largest of the p-values the verdict requires
    n_needed: float  # examples for the exact p <= DECISIVE at the observed rho (inf when rho >= 0)
    bank_needed: float  # null models for the bank's Student p <= DECISIVE at the observed z (inf: unreachable)
    statement: str  # the verdict and, when not decisive, why and what size would be

    @property
    def verdict(self) -> str:
        return VERDICTS[self.code]

    def summary(self) -> dict[str, float]:
        """Finite numbers only (MLflow metrics): verdict code, p_verdict and the sizes that are reachable."""
        out = {"verdict_code": float(self.code), "p_verdict": self.p_verdict}
        out.update({k: v for k, v in (("n_needed", self.n_needed), ("bank_needed", self.bank_needed))
                    if math.isfinite(v)})
        return out


def verdict_code(p: float, alpha: float = DECISIVE) -> int:
    """2 (decisive) when the binding p-value is <= ``alpha``, 1 (evidence) when <= ``EVIDENCE``, else 0."""
    return 2 if p <= alpha else 1 if p <= EVIDENCE else 0


def examples_needed(rho: float, alpha: float = DECISIVE) -> float:
    """Examples at which a Spearman effect ``rho`` (expected negative) gives the one-sided p <= ``alpha``."""
    if rho >= 0:
        return math.inf
    return math.ceil((stats.norm.isf(alpha) / rho) ** 2 + 1)


def bank_needed(z: float, alpha: float = DECISIVE, *, limit: int = 1_000_000) -> float:
    """Smallest bank size ``M`` at which the Student prediction p-value of bank z-score ``z`` is <= ``alpha``."""
    if not z > stats.norm.isf(alpha):
        return math.inf

    def p(m: int) -> float:
        return float(stats.t.sf(z * math.sqrt(m / (m + 1)), m - 1))

    lo, hi = 2, 2
    while p(hi) > alpha:
        lo, hi = hi, hi * 2
        if hi > limit:
            return math.inf
    while lo < hi:  # p(m) falls with m: bisect for the first m with p(m) <= alpha
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if p(mid) > alpha else (lo, mid)
    return float(lo)


def _size(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "no size"


def query_verdict(rho: float, p_value: float, n: int, *, null_z: float | None = None, null_p_t: float | None = None,
                  n_null: int = 0, alpha: float = DECISIVE) -> Verdict:
    """Verdict of a query test from its rho and exact p-value over ``n`` examples, and its bank calibration
    (``null_z``, ``null_p_t`` over ``n_null`` null models) when there is one."""
    p_verdict = max(p_value, null_p_t) if null_p_t is not None else p_value
    code = verdict_code(p_verdict, alpha)
    n_need = examples_needed(rho, alpha)
    m_need = bank_needed(null_z, alpha) if null_z is not None else math.nan
    parts = [f"{VERDICTS[code]}: p = {p_verdict:.2g}" + (" (the larger of the exact and the bank p)"
                                                         if null_p_t is not None else "")]
    if code < 2 and rho >= 0:
        parts.append(f"rho = {rho:+.3f} shows no recency imprint of our order; no size of test would make this "
                     "model decisive")
    elif code < 2:
        if p_value > alpha:
            parts.append(f"if rho = {rho:+.3f} is the model's true effect, the exact p reaches {alpha:g} at "
                         f"n = {_size(n_need)} examples (this test: {n:,})")
        else:
            parts.append(f"the exact p ({p_value:.2g}) is decisive, the bank's is not")
        if null_z is not None and null_p_t is not None and null_p_t > alpha and math.isfinite(m_need):
            parts.append(f"the bank's Student p reaches {alpha:g} at z = {null_z:.2f} with {_size(m_need)} null "
                         f"models (this bank: {n_null}); its rank p cannot go below 1/(M+1), so it needs "
                         f"{math.ceil(1 / alpha - 1):,} models")
        elif null_z is not None and null_p_t is not None and null_p_t > alpha:
            parts.append(f"the bank's z = {null_z:.2f} is below {stats.norm.isf(alpha):.2f}: no bank size makes it "
                         "decisive; more examples (a larger z) come first")
    return Verdict(code, float(p_verdict), float(n_need), float(m_need), "; ".join(parts) + ".")


@dataclass(frozen=True)
class TextVerdict:
    """One observational test's verdict on a suspect text, and the size that would make it decisive."""

    code: int  # the keys of ``VERDICTS``
    p_verdict: float  # the largest of the p-values the verdict requires
    tokens_needed: float  # suspect-text tokens for z to reach the decisive level (test (b); inf: unreachable)
    reshuffles_needed: float  # reshuffles for the exact rank p to reach it (test (b); nan for test (a))
    statement: str

    @property
    def verdict(self) -> str:
        return VERDICTS[self.code]


def text_verdict(row: Mapping, alpha: float = DECISIVE) -> TextVerdict:
    """Verdict of one row of ``curation.provenance.observe`` (``method`` overlap or retrain)."""
    if row["method"] == "overlap":
        p = max(row["p_value"], row["p_rank"])
        code = verdict_code(p, alpha)
        head = f"{VERDICTS[code]}: p = {p:.2g} (the larger of the scipy and the permutation p)"
        if row["statistic"] == 0 and row["p_value"] == 1:
            head = (f"{VERDICTS[0]}: no span of the text occurs in our training data; this test needs far more "
                    f"suspect text than the {row['n_tokens']:,} bytes here (the paper uses hundreds of thousands of "
                    "tokens)")
        return TextVerdict(code, float(p), math.nan, math.nan, head + ".")
    z, k, n = row["statistic"], row["n_reshuffles"], row["n_tokens"]
    p = max(row["p_t"], row["p_rank"])
    code = verdict_code(p, alpha)
    k_need = float(math.ceil(1 / alpha - 1))
    z_need = float(stats.t.isf(alpha, k_need - 1) * math.sqrt((k_need + 1) / k_need))  # Student p at K = k_need
    tokens = math.ceil(n * (z_need / z) ** 2) if z > 0 else math.inf
    parts = [f"{VERDICTS[code]}: p = {p:.2g} (the larger of the Student and the exact rank p)"]
    if code < 2 and z <= 0:
        parts.append(f"z = {z:+.2f}: the text is not more likely under our order than under reshuffled ones; no "
                     "size of test would make it decisive")
    elif code < 2:
        if row["p_rank"] > alpha:
            parts.append(f"the exact rank p cannot go below 1/(K+1) = {1 / (k + 1):.2g} with K = {k} reshuffles; "
                         f"{alpha:g} needs K >= {k_need:,.0f}")
        parts.append(f"at that K the Student p reaches {alpha:g} at z = {z_need:.2f}; if z = {z:.2f} is a real effect, "
                     "growing with the square root of the amount of suspect text (under independence it does not), "
                     f"that is about {_size(tokens)} tokens (this test: {n:,})")
    return TextVerdict(code, float(p), float(tokens), k_need, "; ".join(parts) + ".")
