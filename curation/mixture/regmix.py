"""RegMix baseline: random mixtures labelled by short proxy runs, a regression model, and its predicted optimum.

Following RegMix (Liu et al., 2024): draw ``candidates`` mixtures from a Dirichlet centred on the prior (the
natural token distribution) with a broad concentration, label each with a proxy run, fit the regressor, score
``search_samples`` further random mixtures with it and average the ``top_k`` best. Unlike TiKMiX-M there is no
influence-based anchor: the search is global, so at matched compute it samples the simplex more thinly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curation.mixture.surrogate import SurrogateConfig, fit_surrogate, resolved_kind
from curation.mixture.tikmix_d import MixtureSolution
from curation.mixture.tikmix_m import Labeler, label_all


@dataclass(frozen=True, kw_only=True)
class RegMixConfig:
    """Random-mixture sampling, surrogate and search of the RegMix baseline."""

    candidates: int = field(default=16, metadata={"help": "labelled random mixtures (proxy runs)"})
    concentration: float = field(default=1.0, metadata={"help": "Dirichlet concentration per domain × m × prior"})
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig, metadata={"help": "regression model"})
    search_samples: int = field(default=100_000, metadata={"help": "random mixtures scored by the surrogate"})
    top_k: int = field(default=100, metadata={"help": "best predicted mixtures averaged into the result"})
    seed: int = field(default=0, metadata={"help": "seed"})

    def __post_init__(self) -> None:
        if self.candidates < 2 or self.concentration <= 0 or not 1 <= self.top_k <= self.search_samples:
            raise ValueError("candidates >= 2, concentration > 0 and 1 <= top_k <= search_samples")


def regmix(prior: np.ndarray, labeler: Labeler, cfg: RegMixConfig | None = None) -> MixtureSolution:
    """RegMix mixture: global random search of a surrogate fitted to proxy-run labels."""
    cfg = cfg or RegMixConfig()
    rng = np.random.default_rng(cfg.seed)
    prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
    conc = np.clip(cfg.concentration * prior.size * prior, 1e-3, None)
    candidates = rng.dirichlet(conc, size=cfg.candidates)
    labels = label_all(labeler, candidates, "RegMix labels")
    predict = fit_surrogate(candidates, labels, cfg.surrogate, seed=cfg.seed)
    pool = rng.dirichlet(conc, size=cfg.search_samples)
    best = pool[np.argsort(-predict(pool), kind="stable")[: cfg.top_k]].mean(axis=0)
    best /= best.sum()
    return MixtureSolution(best, True, "surrogate search finished", float(-predict(best)[0]), {
        "surrogate": resolved_kind(cfg.surrogate), "candidates": candidates.tolist(), "labels": labels.tolist(),
        "predicted_label": float(predict(best)[0]), "best_candidate_label": float(labels.max()),
    })
