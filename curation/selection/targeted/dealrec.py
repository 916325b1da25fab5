"""DEALRec (Lin et al., SIGIR 2024; methods spec section 14): influence + effort scores, then coverage-enhanced
stratified sampling, for few-shot fine-tuning on a small pruned subset.

- Influence of removing ``z`` on the total empirical risk of a surrogate:
  ``I(z) = (1/n) grad L_total^T H^-1 grad l(z)``, with one inverse-Hessian-vector product shared by all rows.
  ``H`` is the damped empirical Fisher of the (projected) per-example gradients ``G^T G / n + damping I`` [O]
  (DEALRec uses the surrogate's Hessian via LiSSA).
- Effort ``e(z) = ||grad_phi l_LLM(z)||``: the gradient norm of the target model's trainable parameters (what is
  still hard for it), passed in by the caller.
- ``s(z) = I(z) + lambda e(z)``; with ``standardize`` both terms are z-scored first so ``lambda`` is unit-free [O].
- Coverage-enhanced sampling: the score range is cut into ``strata`` equal-width bins; repeatedly the non-empty
  bin with the fewest rows gets ``min(its size, remaining budget / remaining bins)`` rows drawn uniformly at
  random, so sparse score regions are kept whole and dense ones thinned evenly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from curation.errors import DataContractError


def total_risk_influence(grads: np.ndarray, damping: float = 1e-3) -> np.ndarray:
    """``I(z_i) = (1/n) g_total^T (G^T G / n + damping I)^-1 g_i`` for per-example gradients ``G [n, d]``."""
    g = np.asarray(grads, dtype=np.float64)
    n, d = g.shape
    hessian = g.T @ g / n + damping * np.eye(d)
    ihvp = np.linalg.solve(hessian, g.mean(axis=0))
    return g @ ihvp / n


def stratified_sample(scores: np.ndarray, budget: int, *, strata: int = 50, seed: int = 0) -> np.ndarray:
    """Coverage-enhanced sample of ``budget`` row indices (sorted) over equal-width score strata."""
    n = len(scores)
    if not 0 <= budget <= n:
        raise DataContractError(f"DEALRec: budget {budget} must lie in [0, {n}]")
    lo, hi = float(np.min(scores)), float(np.max(scores))
    edges = np.linspace(lo, hi, strata + 1)
    bins = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, strata - 1)
    groups = [np.flatnonzero(bins == b) for b in range(strata)]
    groups = sorted((g for g in groups if g.size), key=len)
    rng = np.random.default_rng(seed)
    chosen, left = [], budget
    for i, group in enumerate(groups):
        take = min(group.size, left // (len(groups) - i))
        chosen.append(rng.choice(group, size=take, replace=False))
        left -= take
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class DEALRecConfig:
    """Score combination and coverage-enhanced sampling."""

    fraction: float = field(default=0.02, metadata={"help": "share of the pool to keep (the paper: 2%)"})
    effort_weight: float = field(default=1.0, metadata={"help": "lambda in s = I + lambda * effort"})
    standardize: bool = field(default=True, metadata={"help": "z-score influence and effort before combining"})
    damping: float = field(default=1e-3, metadata={"help": "damping of the empirical Fisher in the IHVP"})
    strata: int = field(default=50, metadata={"help": "equal-width score strata for the sampling"})
    seed: int = field(default=0, metadata={"help": "seed of the within-stratum draws and the gradient projection"})
    proj_dim: int = field(default=256, metadata={
        "help": "width of the projected surrogate gradients when the model's gradients are computed here (the "
                "influence solves a proj_dim x proj_dim system)"})

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1 or self.damping <= 0 or self.strata < 1 or self.proj_dim < 1:
            raise ValueError("fraction must lie in [0, 1], damping > 0, strata >= 1 and proj_dim >= 1")


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-12)


class DEALRecSelector:
    """Registered as ``dealrec``: surrogate gradients + effort -> coverage-enhanced subset."""

    name: ClassVar[str] = "dealrec"
    config_cls: ClassVar[type] = DEALRecConfig

    def __init__(self, config: DEALRecConfig | None = None) -> None:
        self.config = config or DEALRecConfig()

    def scores(self, grads: np.ndarray, effort: np.ndarray) -> np.ndarray:
        """``s = I + lambda e`` (each z-scored first when ``standardize``)."""
        if len(grads) != len(effort):
            raise DataContractError(f"DEALRec: {len(grads)} gradient rows but {len(effort)} effort values")
        influence = total_risk_influence(grads, self.config.damping)
        effort = np.asarray(effort, dtype=np.float64)
        if self.config.standardize:
            influence, effort = _z(influence), _z(effort)
        return influence + self.config.effort_weight * effort

    def select(self, grads: np.ndarray, effort: np.ndarray, example_ids: pl.Series) -> pl.DataFrame:
        """``example_id, keep, score`` in input order."""
        s = self.scores(grads, effort)
        rows = stratified_sample(s, int(np.ceil(self.config.fraction * len(s) - 1e-9)), strata=self.config.strata,
                                 seed=self.config.seed)
        keep = np.zeros(len(s), dtype=bool)
        keep[rows] = True
        return pl.DataFrame({"example_id": example_ids, "keep": keep, "score": s})
