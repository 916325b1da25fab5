"""Additivity check of group influence (methods spec §1.6 acceptance check 3; the pitfall of §1.3).

TiKMiX-D scores a mixture ``w`` by the *additive* prediction ``P = S·w``: it assumes that the influence of a
sample mixed from the domains is the share-weighted sum of the domains' group influences. This module tests that
assumption directly, as the paper's own study did: ``mixtures`` random compositions (Latin-hypercube samples in
the 0.5–2× box around the prior, or Dirichlet draws) are each realised as an actual mixed sample of the measured
token budget (``tokens_per_domain``; domain ``j`` contributes ``w_j`` of it, fresh rows drawn with the mixture's
own seed), the sample's summed gradient is scored with the *same* task gradients and inverse-Hessian
approximation as ``S`` (``GroupInfluence.probe``), and both sides get the same per-task normalisation. The
prediction uses the realised composition (tokens drawn from domain ``j`` / tokens in ``S``'s sample of ``j``).
Reported: Pearson correlation per task (what the paper reports) and pooled over all (task, mixture) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.errors import CurationError
from curation.mixture.group_influence import (
    GroupInfluence,
    row_tokens,
    sample_domain,
    summed_gradient,
    task_denominators,
)
from curation.mixture.tikmix_m import box_candidates
from curation.models.base import ModelAdapter
from curation.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class AdditivityConfig:
    """How many random mixtures are realised and measured, and where they are drawn."""

    mixtures: int = field(default=8, metadata={"help": "random mixtures realised as mixed samples (0 = skip the check)"})
    sampling: str = field(default="box", metadata={"help": "box (Latin hypercube in [low, high] × prior) or dirichlet"})
    low: float = field(default=0.5, metadata={"help": "box: lower factor on the prior weight"})
    high: float = field(default=2.0, metadata={"help": "box: upper factor on the prior weight"})
    concentration: float = field(default=1.0, metadata={"help": "dirichlet: concentration per domain × m × prior"})
    seed: int = field(default=0, metadata={"help": "seed for the mixtures and their samples"})

    def __post_init__(self) -> None:
        if self.sampling not in ("box", "dirichlet"):
            raise ValueError(f"sampling must be box or dirichlet, got {self.sampling!r}")
        if self.mixtures < 0 or (0 < self.mixtures < 3):
            raise ValueError("mixtures must be 0 (skip) or >= 3 (a correlation needs at least 3 points)")
        if not 0 < self.low <= 1 <= self.high or self.concentration <= 0:
            raise ValueError("need 0 < low <= 1 <= high and concentration > 0")


@dataclass(frozen=True)
class AdditivityResult:
    """Measured vs additive-predicted influence of each mixed sample, normalised per task like TiKMiX-D's ``P̂``."""

    tasks: tuple[str, ...]
    domains: tuple[str, ...]
    mixtures: np.ndarray  # [M, m] realised composition (shares of each domain's S-sample tokens), rows sum ≈ 1
    predicted: np.ndarray  # [n_tasks, M] normalised S·w
    measured: np.ndarray  # [n_tasks, M] normalised influence of the mixed sample
    tokens: tuple[int, ...]  # tokens in each mixed sample

    @property
    def pearson(self) -> dict[str, float]:
        """Pearson r per task (NaN when one side is constant)."""
        return {t: pearson(self.predicted[i], self.measured[i]) for i, t in enumerate(self.tasks)}

    @property
    def pooled_pearson(self) -> float:
        """Pearson r over every (task, mixture) pair."""
        return pearson(self.predicted.reshape(-1), self.measured.reshape(-1))

    @property
    def mean_pearson(self) -> float:
        """Mean of the per-task correlations (the headline figure)."""
        return float(np.mean(list(self.pearson.values())))

    def frame(self) -> pl.DataFrame:
        """Long table ``mixture, task, predicted, measured, tokens`` plus one ``w_<domain>`` column per domain."""
        m = self.mixtures.shape[0]
        base = pl.DataFrame({
            "mixture": [k for _ in self.tasks for k in range(m)],
            "task": [t for t in self.tasks for _ in range(m)],
            "predicted": self.predicted.reshape(-1),
            "measured": self.measured.reshape(-1),
            "tokens": [self.tokens[k] for _ in self.tasks for k in range(m)],
        })
        shares = pl.DataFrame({f"w_{d}": self.mixtures[:, j] for j, d in enumerate(self.domains)}).with_row_index(
            "mixture")
        return base.join(shares.with_columns(pl.col("mixture").cast(pl.Int64)), on="mixture", how="left")

    def metrics(self) -> dict[str, float]:
        """Headline numbers for MLflow / DVC: mean, minimum, pooled and per-task Pearson."""
        per_task = self.pearson
        return {"additivity_pearson": self.mean_pearson, "additivity_pearson_min": float(min(per_task.values())),
                "additivity_pearson_pooled": self.pooled_pearson, "additivity_mixtures": float(len(self.tokens)),
                **{f"additivity_pearson_{t}": v for t, v in per_task.items()}}


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two vectors; NaN when either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def draw_mixtures(prior: np.ndarray, cfg: AdditivityConfig, rng: np.random.Generator) -> np.ndarray:
    """``cfg.mixtures`` compositions (rows sum to 1) around ``prior``."""
    prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
    if cfg.sampling == "box":
        return box_candidates(prior, cfg.mixtures, cfg.low, cfg.high, rng)
    return rng.dirichlet(np.clip(cfg.concentration * prior.size * prior, 1e-3, None), size=cfg.mixtures)


def mixed_sample(adapter: ModelAdapter, train: pl.DataFrame, weights: Sequence[float], budgets: Sequence[int],
                 domains: Sequence[str], *, seed: int, domain_column: str = "domain") -> tuple[pl.DataFrame, np.ndarray]:
    """Rows of a sample with ``weights[j] × budgets[j]`` tokens from domain ``j``; also the tokens drawn per domain."""
    parts, drawn = [], []
    for w, budget, domain in zip(weights, budgets, domains, strict=True):
        want = round(float(w) * budget)
        if want < 1:
            drawn.append(0)
            continue
        rows = sample_domain(adapter, train.filter(pl.col(domain_column).cast(pl.Utf8) == domain), want, seed=seed,
                             where=f"training domain '{domain}'")
        parts.append(rows)
        drawn.append(int(row_tokens(adapter, rows).sum()))
    if not parts:
        raise CurationError(f"mixture {list(weights)} draws no tokens (budgets {list(budgets)})")
    return pl.concat(parts), np.asarray(drawn, dtype=np.float64)


SampleGradient = Callable[[pl.DataFrame], torch.Tensor]


def additivity_check(adapter: ModelAdapter, model: nn.Module, train: pl.DataFrame, gi: GroupInfluence,
                     prior: np.ndarray, cfg: AdditivityConfig, *, domain_column: str = "domain",
                     batch_size: int = 32, sample_gradient: SampleGradient | None = None) -> AdditivityResult:
    """Measure the influence of ``cfg.mixtures`` real mixed samples and compare it with the additive ``S·w``.

    ``sample_gradient`` (rows -> flattened gradient over ``gi.probe.modules``) replaces the summed gradient that
    group influence uses, e.g. to see how a clipped or normalised gradient departs from additivity.
    """
    if gi.probe is None:
        raise CurationError("the additivity check needs a GroupInfluence measured by group_influence() (no probe)")
    rng = np.random.default_rng(cfg.seed)
    targets = draw_mixtures(prior, cfg, rng)
    seeds = rng.integers(0, 2**31 - 1, size=len(targets))
    budgets = np.asarray(gi.tokens, dtype=np.float64)
    grads, shares, tokens = [], [], []
    with progress_bar(total=len(targets), description="additivity check") as advance:
        for w, seed in zip(targets, seeds, strict=True):
            sample, drawn = mixed_sample(adapter, train, w, gi.tokens, gi.domains, seed=int(seed),
                                         domain_column=domain_column)
            grads.append(sample_gradient(sample) if sample_gradient is not None else
                         summed_gradient(adapter, model, sample, gi.probe.modules, batch_size=batch_size))
            shares.append(drawn / budgets)
            tokens.append(int(drawn.sum()))
            advance(1)
    measured = gi.probe.influence(torch.stack(grads))
    mixtures = np.stack(shares)
    denom = task_denominators(gi.matrix, tasks=gi.tasks)[:, None]
    return AdditivityResult(tasks=gi.tasks, domains=gi.domains, mixtures=mixtures,
                            predicted=(gi.matrix @ mixtures.T) / denom, measured=measured / denom,
                            tokens=tuple(tokens))
