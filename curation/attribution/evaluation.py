"""Counterfactual evaluation of attribution scores: the linear datamodeling score (LDS, Park et al. 2023).

For random training subsets ``S_1..S_K`` a model is retrained on each (ideally averaged over a few seeds) and a
query's measurement ``f(q; S_k)`` recorded. An attribution method predicts ``f(q; S_k)`` up to an affine map by
``−Σ_{i∈S_k} score(i, q)`` (positive score = helpful = lowers the loss). LDS is the Spearman correlation between
prediction and outcome across subsets, averaged over queries.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def random_subsets(n: int, count: int, *, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Boolean masks ``[count, n]``, each selecting ``round(fraction·n)`` rows uniformly at random."""
    rng = np.random.default_rng(seed)
    size = round(fraction * n)
    masks = np.zeros((count, n), dtype=bool)
    for k in range(count):
        masks[k, rng.choice(n, size, replace=False)] = True
    return masks


def linear_datamodeling_score(matrix: np.ndarray, masks: np.ndarray, outcomes: np.ndarray) -> float:
    """Mean over queries of Spearman(−masks @ matrix, outcomes); ``matrix`` is ``[n, m]``, outcomes ``[K, m]``
    loss-like measurements of the models retrained on each mask."""
    predicted = -(masks.astype(np.float64) @ np.nan_to_num(np.asarray(matrix, dtype=np.float64)))
    rhos = [spearmanr(predicted[:, j], outcomes[:, j]).statistic for j in range(outcomes.shape[1])]
    return float(np.nanmean(rhos))
