"""TiKMiX-M: refine a mixture with a regression surrogate fitted to labelled candidate mixtures around it.

1. Box ``[low·w_i, high·w_i]`` around the anchor (the TiKMiX-D solution); Latin-hypercube samples in the box,
   normalised to sum 1, rejected when a component leaves its interval, until ``candidates`` are valid.
2. Label each candidate (``ProxyTrainingLabel``: a short training run; or ``InfluenceLabel``) and fit the
   surrogate (LightGBM, or quadratic ridge).
3. The paper's search (Algorithm 1): from ``w_best = anchor``, for ``α_t`` log-spaced from ``alpha_max`` down to
   ``alpha_min``, draw ``search_samples`` mixtures ``~ Dirichlet(α_t · w_best)``, score them with the surrogate and
   set ``w_best`` to the mean of the ``top_k``. The result is ``w_best``.
The paper gives none of N, T, α range, k; the defaults are the methods spec's [O] values, except ``candidates``,
which is small because each CPU label is a training run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import qmc

from curation.errors import CurationError
from curation.mixture.surrogate import Predictor, SurrogateConfig, fit_surrogate, resolved_kind
from curation.mixture.tikmix_d import MixtureSolution, TikmixDConfig
from curation.progress import progress_bar

Labeler = Callable[[np.ndarray], float]


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """The Dirichlet search over a fitted surrogate (TiKMiX-M Algorithm 1)."""

    iterations: int = field(default=10, metadata={"help": "T, exploration strengths"})
    alpha_max: float = field(default=1000.0, metadata={"help": "first (tightest) Dirichlet concentration"})
    alpha_min: float = field(default=20.0, metadata={"help": "last (widest) Dirichlet concentration"})
    samples: int = field(default=1024, metadata={"help": "Dirichlet samples per iteration"})
    top_k: int = field(default=16, metadata={"help": "best samples averaged into the next w_best"})

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.samples < 1 or not 1 <= self.top_k <= self.samples:
            raise ValueError("iterations, samples >= 1 and 1 <= top_k <= samples")
        if not 0 < self.alpha_min <= self.alpha_max:
            raise ValueError("need 0 < alpha_min <= alpha_max")


@dataclass(frozen=True, kw_only=True)
class TikmixMConfig:
    """Candidate sampling, surrogate and search of TiKMiX-M."""

    anchor: TikmixDConfig = field(default_factory=TikmixDConfig, metadata={"help": "TiKMiX-D settings of the anchor"})
    candidates: int = field(default=16, metadata={"help": "labelled candidate mixtures (N)"})
    low: float = field(default=0.5, metadata={"help": "lower box factor around the anchor weight"})
    high: float = field(default=2.0, metadata={"help": "upper box factor around the anchor weight"})
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig, metadata={"help": "regression model"})
    search: SearchConfig = field(default_factory=SearchConfig, metadata={"help": "surrogate optimum search"})
    trust_box: bool = field(default=True, metadata={"help": "search only inside the sampled box"})
    seed: int = field(default=0, metadata={"help": "seed for sampling and search"})

    def __post_init__(self) -> None:
        if self.candidates < 2 or not 0 < self.low <= 1 <= self.high:
            raise ValueError("candidates >= 2 and 0 < low <= 1 <= high")


def box_candidates(anchor: np.ndarray, n: int, low: float, high: float, rng: np.random.Generator,
                   max_rounds: int = 1000) -> np.ndarray:
    """``n`` mixtures (rows sum to 1) from Latin-hypercube samples in the box around ``anchor``, with rejection."""
    anchor = np.asarray(anchor, dtype=np.float64)
    lo, hi = low * anchor, np.minimum(high * anchor, 1.0)
    sampler = qmc.LatinHypercube(d=anchor.size, seed=rng)
    kept: list[np.ndarray] = []
    for _ in range(max_rounds):
        raw = qmc.scale(sampler.random(n), lo, np.maximum(hi, lo + 1e-12))
        w = raw / raw.sum(axis=1, keepdims=True)
        ok = np.all((w >= lo - 1e-12) & (w <= hi + 1e-12), axis=1)
        kept.extend(w[ok])
        if len(kept) >= n:
            return np.stack(kept[:n])
    raise CurationError(f"could not sample {n} mixtures in the box [{low}, {high}] × anchor; widen it")


def dirichlet_search(predict: Predictor, start: np.ndarray, cfg: SearchConfig, rng: np.random.Generator,
                     box: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """TiKMiX-M Algorithm 1: contract toward the surrogate's optimum with widening Dirichlet exploration.

    With ``box = (lo, hi)`` samples outside it score ``-inf``: a surrogate is only trusted where it was fitted
    (a quadratic ridge extrapolates to the simplex corners otherwise; trees are flat there anyway).
    """
    best = np.asarray(start, dtype=np.float64)
    for alpha in np.geomspace(cfg.alpha_max, cfg.alpha_min, cfg.iterations):
        conc = np.clip(alpha * best, 1e-3, None)
        samples = rng.dirichlet(conc, size=cfg.samples)
        scores = predict(samples)
        if box is not None:
            inside = np.all((samples >= box[0] - 1e-12) & (samples <= box[1] + 1e-12), axis=1)
            if not inside.any():
                continue
            scores = np.where(inside, scores, -np.inf)
        top = np.argsort(-scores, kind="stable")[: min(cfg.top_k, int(np.isfinite(scores).sum()))]
        best = samples[top].mean(axis=0)
    return best / best.sum()


def label_all(labeler: Labeler, mixtures: np.ndarray, description: str) -> np.ndarray:
    """Labels of every mixture, with progress."""
    out = []
    with progress_bar(total=len(mixtures), description=description) as advance:
        for w in mixtures:
            out.append(labeler(w))
            advance(1)
    return np.asarray(out, dtype=np.float64)


def tikmix_m(anchor: np.ndarray, labeler: Labeler, cfg: TikmixMConfig | None = None) -> MixtureSolution:
    """Surrogate-refined mixture around ``anchor``; extras hold the candidates, labels and surrogate kind."""
    cfg = cfg or TikmixMConfig()
    rng = np.random.default_rng(cfg.seed)
    anchor = np.asarray(anchor, dtype=np.float64) / np.sum(anchor)
    candidates = box_candidates(anchor, cfg.candidates, cfg.low, cfg.high, rng)
    labels = label_all(labeler, candidates, "TiKMiX-M labels")
    predict = fit_surrogate(candidates, labels, cfg.surrogate, seed=cfg.seed)
    box = (cfg.low * anchor, np.minimum(cfg.high * anchor, 1.0)) if cfg.trust_box else None
    best = dirichlet_search(predict, anchor, cfg.search, rng, box)
    return MixtureSolution(best, True, "surrogate search finished", float(-predict(best)[0]), {
        "surrogate": resolved_kind(cfg.surrogate), "candidates": candidates.tolist(), "labels": labels.tolist(),
        "predicted_label": float(predict(best)[0]), "best_candidate_label": float(labels.max()),
    })
