"""Membership-inference scores for causal language models, computed through a ``ModelAdapter``.

Every scorer takes ``(adapter, model, frame)`` (``frame`` has ``example_id`` and whatever the adapter collates,
e.g. ``text``) and returns a polars frame ``example_id, score`` with one sign convention: **higher score = more
member-like** (loss-like quantities are negated). Definitions follow the methods spec §3.1:

- ``loss``: mean token log-likelihood ``(1/T) Σ lp_t``.
- ``zlib``: mean token log-likelihood divided by the byte length of ``zlib.compress(utf8(text))``.
- ``reference``: mean log-likelihood under the target minus that under a reference model.
- ``min_k``: mean of the lowest ``k`` fraction of ``lp_t`` (``max(1, int(k*T))`` tokens, as in the authors' code).
- ``min_k_plus_plus``: the same over ``z_t = (lp_t - mu_t) / sigma_t`` where ``mu_t``/``sigma_t`` are the mean and
  standard deviation of ``log p(v|x_<t)`` under ``p(.|x_<t)``; needs the adapter's ``token_distributions``.

The adapter must provide ``token_logprobs(model, batch) -> [B, T]`` and a ``target_mask`` in its batches; Min-K%++
additionally needs ``token_distributions(model, batch) -> [B, T, V]`` (log-probabilities).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.errors import CurationError
from curation.models.base import ModelAdapter
from curation.progress import progress_bar

SCORERS = ("loss", "zlib", "reference", "min_k", "min_k_plus_plus")


@dataclass(frozen=True)
class TokenStats:
    """Per-example token arrays (masked positions removed): log-probs, and optionally the distribution moments."""

    example_id: pl.Series
    logprobs: list[np.ndarray]
    mu: list[np.ndarray] | None = None
    sigma: list[np.ndarray] | None = None


def _require(adapter: ModelAdapter, method: str) -> None:
    if not callable(getattr(adapter, method, None)):
        raise CurationError(f"adapter '{adapter.name}' has no {method}(model, batch); membership scores need it")


@torch.no_grad()
def token_stats(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, moments: bool = False, batch_size: int = 64
) -> TokenStats:
    """Per-token log-probabilities of every row (and, with ``moments``, mu_t and sigma_t for Min-K%++)."""
    _require(adapter, "token_logprobs")
    if moments:
        _require(adapter, "token_distributions")
    if "example_id" not in frame.columns:
        raise CurationError("membership input: missing column 'example_id'")
    model.eval()
    lps: list[np.ndarray] = []
    mus: list[np.ndarray] = []
    sigmas: list[np.ndarray] = []
    with progress_bar(total=frame.height, description="membership scores", enabled=frame.height > 4 * batch_size) as advance:
        for start in range(0, frame.height, batch_size):
            batch = adapter.collate(frame.slice(start, batch_size))
            mask = batch["target_mask"].bool()
            if moments:
                logp = adapter.token_distributions(model, batch).double()
                lp = logp.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)
                mu, sigma = distribution_moments(logp)
            else:
                lp = adapter.token_logprobs(model, batch).double()
            for i in range(lp.shape[0]):
                keep = mask[i]
                lps.append(lp[i][keep].numpy())
                if moments:
                    mus.append(mu[i][keep].numpy())
                    sigmas.append(sigma[i][keep].numpy())
            advance(lp.shape[0])
    for i, arr in enumerate(lps):
        if arr.size == 0:
            raise CurationError(f"membership input: row {i} (example_id={frame['example_id'][i]}) has no tokens to score")
    return TokenStats(frame["example_id"], lps, mus if moments else None, sigmas if moments else None)


def distribution_moments(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-K%++'s ``mu_t = sum_v p log p`` and ``sigma_t = sqrt(sum_v p (log p)^2 - mu_t^2)`` of next-token
    log-distributions ``[..., V]`` (the one implementation; unlearning verification uses it too)."""
    p = logp.exp()
    mu = (p * logp).sum(-1)
    sigma = ((p * logp.square()).sum(-1) - mu.square()).clamp_min(0.0).sqrt()
    return mu, sigma


def n_lowest(n_tokens: int, k: float) -> int:
    """How many of ``n_tokens`` values Min-K% averages: ``max(1, int(k * n))``, as in the authors' code."""
    return max(1, int(k * n_tokens))


def _frame(ids: pl.Series, scores: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"example_id": ids, "score": pl.Series(scores, dtype=pl.Float64)})


def lowest_fraction_mean(values: np.ndarray, k: float) -> float:
    """Mean of the ``n_lowest(len(values), k)`` smallest values."""
    n = n_lowest(values.size, k)
    return float(np.sort(values)[:n].mean())


def _check_k(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise CurationError(f"membership: k={k} must lie in (0, 1]")


def loss_score(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, batch_size: int = 64) -> pl.DataFrame:
    """Mean token log-likelihood (the negated loss)."""
    st = token_stats(adapter, model, frame, batch_size=batch_size)
    return _frame(st.example_id, [float(a.mean()) for a in st.logprobs])


def zlib_score(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, batch_size: int = 64) -> pl.DataFrame:
    """Mean token log-likelihood divided by the zlib-compressed byte length of the text."""
    if "text" not in frame.columns:
        raise CurationError("membership input: zlib score needs a 'text' column")
    st = token_stats(adapter, model, frame, batch_size=batch_size)
    sizes = [len(zlib.compress(t.encode("utf-8"))) for t in frame["text"].to_list()]
    return _frame(st.example_id, [float(a.mean()) / s for a, s in zip(st.logprobs, sizes, strict=True)])


def reference_score(
    adapter: ModelAdapter,
    model: nn.Module,
    frame: pl.DataFrame,
    *,
    reference_model: nn.Module,
    reference_adapter: ModelAdapter | None = None,
    batch_size: int = 64,
) -> pl.DataFrame:
    """Target minus reference mean token log-likelihood (the reference strips example difficulty)."""
    target = loss_score(adapter, model, frame, batch_size=batch_size)
    ref = loss_score(reference_adapter or adapter, reference_model, frame, batch_size=batch_size)
    return target.with_columns(score=pl.col("score") - ref["score"])


def min_k_score(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, k: float = 0.2, batch_size: int = 64
) -> pl.DataFrame:
    """Min-K% Prob: mean of the lowest ``k`` fraction of token log-probabilities."""
    _check_k(k)
    st = token_stats(adapter, model, frame, batch_size=batch_size)
    return _frame(st.example_id, [lowest_fraction_mean(a, k) for a in st.logprobs])


def min_k_plus_plus_score(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, k: float = 0.2, batch_size: int = 64
) -> pl.DataFrame:
    """Min-K%++: mean of the lowest ``k`` fraction of ``(lp_t - mu_t) / sigma_t``."""
    _check_k(k)
    st = token_stats(adapter, model, frame, moments=True, batch_size=batch_size)
    assert st.mu is not None and st.sigma is not None
    scores = []
    for lp, mu, sigma in zip(st.logprobs, st.mu, st.sigma, strict=True):
        z = (lp - mu) / np.maximum(sigma, 1e-12)
        scores.append(lowest_fraction_mean(z, k))
    return _frame(st.example_id, scores)


def all_scores(
    adapter: ModelAdapter,
    model: nn.Module,
    frame: pl.DataFrame,
    *,
    k: float = 0.2,
    reference_model: nn.Module | None = None,
    reference_adapter: ModelAdapter | None = None,
    batch_size: int = 64,
) -> pl.DataFrame:
    """One frame ``example_id`` + a column per score (``reference`` only when a reference model is given).

    Uses one pass over the target model (and one over the reference), unlike calling each scorer separately.
    """
    _check_k(k)
    st = token_stats(adapter, model, frame, moments=True, batch_size=batch_size)
    assert st.mu is not None and st.sigma is not None
    mean_lp = np.array([a.mean() for a in st.logprobs])
    out = {
        "example_id": st.example_id,
        "loss": mean_lp,
        "min_k": np.array([lowest_fraction_mean(a, k) for a in st.logprobs]),
        "min_k_plus_plus": np.array([
            lowest_fraction_mean((lp - mu) / np.maximum(sg, 1e-12), k)
            for lp, mu, sg in zip(st.logprobs, st.mu, st.sigma, strict=True)
        ]),
    }
    if "text" in frame.columns:
        out["zlib"] = mean_lp / np.array([len(zlib.compress(t.encode("utf-8"))) for t in frame["text"].to_list()])
    if reference_model is not None:
        ref = loss_score(reference_adapter or adapter, reference_model, frame, batch_size=batch_size)
        out["reference"] = mean_lp - ref["score"].to_numpy()
    return pl.DataFrame(out)
