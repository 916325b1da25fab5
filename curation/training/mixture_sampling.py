"""Mixture-weighted training order: which rows a run consumes when domains are sampled by given weights.

TiKMiX and RegMix express a training run's data as a domain mixture ``w`` (one weight per ``domain``). Instead of
copying rows (which would duplicate ``example_id`` and break the recorded training positions), the sampler returns
an *order* of row indices into the unchanged table: the share of draws from each domain equals its weight (exact
counts by largest remainder), rows within a domain are drawn without replacement and reshuffled each time the
domain is exhausted, and draws are interleaved at random. ``curation.training.train(..., order=...)`` consumes it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from curation.errors import CurationError, DataContractError


def mixture_counts(weights: Mapping[str, float], n_draws: int) -> dict[str, int]:
    """Draws per domain: ``n_draws * w`` rounded by largest remainder so they sum exactly to ``n_draws``."""
    names = list(weights)
    w = np.array([float(weights[k]) for k in names], dtype=np.float64)
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise CurationError(f"mixture weights must be finite, non-negative and not all zero: {dict(weights)}")
    raw = n_draws * w / w.sum()
    counts = np.floor(raw).astype(np.int64)
    short = n_draws - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return dict(zip(names, counts.tolist(), strict=True))


def mixture_order(
    frame: pl.DataFrame,
    weights: Mapping[str, float],
    n_draws: int,
    *,
    seed: int = 0,
    domain_column: str = "domain",
    where: str = "training table",
) -> np.ndarray:
    """Row indices of ``frame`` to train on, ``n_draws`` long, with domain shares equal to ``weights``.

    Every weighted domain must occur in the table; domains of the table absent from ``weights`` get weight 0.
    """
    if domain_column not in frame.columns:
        raise DataContractError(f"{where}: missing column '{domain_column}' needed for mixture sampling")
    if n_draws < 1:
        raise CurationError(f"{where}: mixture sampling needs at least one draw, got {n_draws}")
    domains = frame[domain_column].cast(pl.Utf8).to_numpy()
    present = set(domains.tolist())
    counts = mixture_counts(weights, n_draws)
    missing = [d for d, c in counts.items() if c > 0 and d not in present]
    if missing:
        raise DataContractError(f"{where}: column '{domain_column}' has no rows of mixture domain(s) {missing}")
    rng = np.random.default_rng(seed)
    parts = []
    for name in sorted(counts):
        rows = np.flatnonzero(domains == name)
        need = counts[name]
        if need == 0:
            continue
        reps = -(-need // rows.size)
        parts.append(np.concatenate([rng.permutation(rows) for _ in range(reps)])[:need])
    return rng.permutation(np.concatenate(parts))


def natural_mixture(
    frame: pl.DataFrame, *, domain_column: str = "domain", size_column: str | None = None
) -> dict[str, float]:
    """Size-proportional weights: each domain's share of rows (or of ``size_column``'s total, e.g. characters)."""
    if domain_column not in frame.columns:
        raise DataContractError(f"table: missing column '{domain_column}'")
    size = pl.col(size_column).sum() if size_column else pl.len()
    agg = frame.group_by(domain_column).agg(size.alias("n")).sort(domain_column)
    total = float(agg["n"].sum())
    return {str(d): float(n) / total for d, n in agg.iter_rows()}
