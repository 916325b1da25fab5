"""Palimpsestic provenance tests (Kuditipudi et al.; methods spec §2): does a model or a text derive from our run?

Language models remember what they saw late in training better than what they saw early. Our trainer shuffles
uniformly at random and records every example's ``position``, so under the null hypothesis "the suspect is
independent of our run" any statistic correlating the suspect with that order has an exactly known null
distribution (re-permute the order), whatever the data.

- ``query_test``: Spearman(position, suspect loss - reference loss) over training examples; expected negative.
- ``span_overlap_test`` (observational a): how many of the suspect text's character n-grams each training example
  contains, Spearman against position; expected positive.
- ``retrain_test`` (observational b): log-likelihood of the suspect text under the last phase retrained in the
  original order versus K reshuffled orders; z-score and exact rank p-value.

Every p-value is one-sided in the direction derivation predicts; permutation p-values are
``(1 + #{j: phi_j as or more extreme than phi_0}) / (m + 1)``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats
from torch import nn

from curation.errors import CurationError
from curation.models.base import ModelAdapter
from curation.progress import progress_bar
from curation.provenance.membership import loss_score, token_stats
from curation.provenance.retrain import OrderedTrainConfig, reshuffled, train_in_order


@dataclass(frozen=True)
class CorrelationResult:
    """A rank-correlation test of a per-example quantity against training position."""

    statistic: float  # Spearman rho
    p_value: float  # scipy (t approximation), one-sided in the expected direction
    p_permutation: float  # exact permutation p-value (floor 1/(m+1))
    z_permutation: float  # rho standardised by the permutation sample, signed so that large = evidence
    n: int
    n_permutations: int
    frame: pl.DataFrame = field(repr=False)  # per-example values used (example_id, position, value columns)

    def summary(self) -> dict[str, float]:
        return {
            "statistic": self.statistic, "p_value": self.p_value, "p_permutation": self.p_permutation,
            "z_permutation": self.z_permutation, "n": self.n, "n_permutations": self.n_permutations,
        }


def check_positions(positions: pl.DataFrame, where: str = "positions") -> pl.DataFrame:
    """``example_id, position`` with unique ids and non-null positions, or a one-line ``CurationError``."""
    for col in ("example_id", "position"):
        if col not in positions.columns:
            raise CurationError(f"{where}: missing column '{col}'")
    if positions["position"].null_count():
        row = positions["position"].is_null().arg_true()[0]
        raise CurationError(f"{where}: column 'position' is null at row {row}")
    dup = ~positions["example_id"].is_first_distinct()
    if dup.any():
        row = dup.arg_true()[0]
        raise CurationError(
            f"{where}: column 'example_id' repeats at row {row} ({positions['example_id'][row]}); "
            "deduplicate repeated documents, their training position is ambiguous"
        )
    return positions.select("example_id", "position")


def rank_correlation_test(
    position: np.ndarray, value: np.ndarray, *, expect: str, n_permutations: int = 999, seed: int = 0
) -> tuple[float, float, float, float]:
    """Spearman rho of ``value`` against ``position``; ``expect`` is ``"less"`` or ``"greater"``.

    Returns ``(rho, scipy one-sided p, permutation p, permutation z)``. The permutation re-draws the order
    uniformly at random, which is exactly the null distribution under a uniformly shuffled training run.
    """
    if position.size < 3:
        raise CurationError(f"palimpsest: need at least 3 examples with a position, got {position.size}")
    res = stats.spearmanr(position, value, alternative=expect)
    rho = float(res.statistic)
    if not np.isfinite(rho):
        raise CurationError("palimpsest: the compared values are constant; the rank correlation is undefined")
    rank_pos = stats.rankdata(position)
    rank_val = stats.rankdata(value)
    rank_val = (rank_val - rank_val.mean()) / np.linalg.norm(rank_val - rank_val.mean())
    centred = rank_pos - rank_pos.mean()
    scale = np.linalg.norm(centred)
    rng = np.random.default_rng(seed)
    null = np.array([rng.permutation(centred) @ rank_val / scale for _ in range(n_permutations)])
    sign = -1.0 if expect == "less" else 1.0
    extreme = int(np.sum(sign * null >= sign * rho - 1e-12))
    p_perm = (1 + extreme) / (n_permutations + 1)
    z = float(sign * (rho - null.mean()) / null.std()) if null.std() > 0 else 0.0
    return rho, float(res.pvalue), p_perm, z


def query_test(
    positions: pl.DataFrame,
    suspect_loss: pl.DataFrame,
    reference_loss: pl.DataFrame | None = None,
    *,
    n_permutations: int = 999,
    seed: int = 0,
) -> CorrelationResult:
    """Spearman(position, suspect loss - reference loss) over examples present in all frames; expected < 0.

    ``suspect_loss`` / ``reference_loss`` are ``example_id, loss`` frames (mean token NLL, same texts and
    tokenisation). Without a reference the raw suspect loss is used (needs far more examples).
    """
    frame = check_positions(positions).join(suspect_loss.select("example_id", suspect_loss=pl.col("loss")),
                                            on="example_id", how="inner")
    if reference_loss is not None:
        frame = frame.join(reference_loss.select("example_id", reference_loss=pl.col("loss")),
                           on="example_id", how="inner")
        frame = frame.with_columns(value=pl.col("suspect_loss") - pl.col("reference_loss"))
    else:
        frame = frame.with_columns(value=pl.col("suspect_loss"))
    frame = frame.sort("position")
    rho, p, p_perm, z = rank_correlation_test(
        frame["position"].to_numpy(), frame["value"].to_numpy(), expect="less",
        n_permutations=n_permutations, seed=seed,
    )
    return CorrelationResult(rho, p, p_perm, z, frame.height, n_permutations, frame)


def example_losses(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, batch_size: int = 64) -> pl.DataFrame:
    """``example_id, loss``: mean token negative log-likelihood of every row."""
    return loss_score(adapter, model, frame, batch_size=batch_size).select("example_id", loss=-pl.col("score"))


def span_overlap_counts(train_texts: list[str], suspect_texts: list[str], *, n: int) -> np.ndarray:
    """For each training text, how many character ``n``-grams of the suspect texts it contains (with multiplicity
    over suspect offsets, credit split equally among the training texts sharing the n-gram)."""
    if n < 1:
        raise CurationError(f"span overlap: n={n} must be positive")
    index: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(train_texts):
        for gram in {text[j : j + n] for j in range(len(text) - n + 1)}:
            index[gram].append(i)
    counts = np.zeros(len(train_texts))
    for text in suspect_texts:
        for j in range(len(text) - n + 1):
            owners = index.get(text[j : j + n])
            if owners:
                counts[owners] += 1.0 / len(owners)
    return counts


def span_overlap_test(
    train: pl.DataFrame,
    positions: pl.DataFrame,
    suspect_texts: list[str],
    *,
    n: int = 16,
    n_permutations: int = 999,
    seed: int = 0,
) -> CorrelationResult:
    """Observational test (a): Spearman(position, suspect n-gram matches per training example); expected > 0.

    Simplification of the paper's "longest match up to k tokens": one fixed span length ``n`` in characters.
    Needs far more suspect text than test (b) (hundreds of thousands of tokens in the paper).
    """
    if "text" not in train.columns:
        raise CurationError("span overlap: training table has no 'text' column")
    frame = check_positions(positions).join(train.select("example_id", "text"), on="example_id", how="inner")
    frame = frame.sort("position")
    counts = span_overlap_counts(frame["text"].to_list(), suspect_texts, n=n)
    if not counts.any():
        raise CurationError(f"span overlap: no {n}-character span of the suspect text occurs in the training data")
    frame = frame.drop("text").with_columns(value=pl.Series(counts))
    rho, p, p_perm, z = rank_correlation_test(
        frame["position"].to_numpy(), counts, expect="greater", n_permutations=n_permutations, seed=seed
    )
    return CorrelationResult(rho, p, p_perm, z, frame.height, n_permutations, frame)


@dataclass(frozen=True)
class RetrainResult:
    """Observational test (b): suspect-text log-likelihood under original-order vs reshuffled retrains."""

    original_loglik: float
    reshuffled_loglik: list[float]
    z: float  # (L_0 - mean(L_1..K)) / std(L_1..K)
    p_normal: float  # 1 - Phi(z)
    p_rank: float  # (1 + #{j: L_j >= L_0}) / (K + 1); floor 1/(K+1)
    n_tokens: int

    def summary(self) -> dict[str, float]:
        return {"statistic": self.z, "p_value": self.p_normal, "p_rank": self.p_rank, "n_tokens": self.n_tokens,
                "n_reshuffles": len(self.reshuffled_loglik)}


def total_loglik(adapter: ModelAdapter, model: nn.Module, texts: pl.DataFrame) -> tuple[float, int]:
    """Sum of token log-probabilities of all rows and the number of tokens scored.

    With a ``prompt`` column each row is scored as ``prompt + text`` and only the completion's tokens count
    (the prompt is context, as in the paper's setting of 32-token completions of 20-token prompts).
    """
    if "prompt" not in texts.columns:
        st = token_stats(adapter, model, texts)
        return float(sum(a.sum() for a in st.logprobs)), int(sum(a.size for a in st.logprobs))
    joined = texts.with_columns(text=pl.col("prompt") + pl.col("text"))
    st = token_stats(adapter, model, joined)
    prompt_tokens = token_stats(adapter, model, texts.select("example_id", text=pl.col("prompt")))
    skip = [a.size for a in prompt_tokens.logprobs]  # prompt of P tokens = P - 1 targets; completion follows
    kept = [a[k:] for a, k in zip(st.logprobs, skip, strict=True)]
    return float(sum(a.sum() for a in kept)), int(sum(a.size for a in kept))


def last_phase(frame: pl.DataFrame, positions: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """Rows trained in the last ``fraction`` of the run, in their original order."""
    if not 0.0 < fraction < 1.0:
        raise CurationError(f"retrain test: fraction={fraction} must lie in (0, 1)")
    ordered = check_positions(positions).join(frame, on="example_id", how="inner").sort("position")
    start = round((1.0 - fraction) * ordered.height)
    return ordered.slice(start).drop("position")


def retrain_test(
    adapter: ModelAdapter,
    boundary_model: nn.Module,
    phase: pl.DataFrame,
    suspect_texts: pl.DataFrame,
    cfg: OrderedTrainConfig,
    *,
    n_reshuffles: int = 9,
    seed: int = 0,
) -> RetrainResult:
    """Retrain ``phase`` (rows in original order) from ``boundary_model`` once as is and ``n_reshuffles`` times
    reshuffled, with the same procedure; compare the suspect texts' log-likelihood (``example_id, text`` and
    optionally ``prompt``: then only the completion ``text`` is scored, in the prompt's context)."""
    if n_reshuffles < 2:
        raise CurationError(f"retrain test: n_reshuffles={n_reshuffles} must be at least 2")
    orders = [phase] + [reshuffled(phase, seed + 1 + j) for j in range(n_reshuffles)]
    logliks: list[float] = []
    n_tokens = 0
    with progress_bar(total=len(orders), description="retraining last phase") as advance:
        for rows in orders:
            model = train_in_order(adapter, boundary_model, rows, cfg)
            ll, n_tokens = total_loglik(adapter, model, suspect_texts)
            logliks.append(ll)
            advance(1)
    l0, rest = logliks[0], np.array(logliks[1:])
    sd = float(rest.std(ddof=1))
    z = float((l0 - rest.mean()) / sd) if sd > 0 else 0.0
    p_rank = (1 + int(np.sum(rest >= l0))) / (n_reshuffles + 1)
    return RetrainResult(l0, rest.tolist(), z, float(stats.norm.sf(z)), p_rank, n_tokens)
