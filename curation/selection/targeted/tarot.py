"""TAROT (Feng et al., ICML 2025; methods spec section 9): whitened feature distance + optimal-transport selection.

Whitened feature distance (WFD): candidate and target features (projected gradients divided by ``sqrt(#params)``,
averaged over checkpoints with LESS's weights -- the reference code whitens only the last checkpoint, we average
properly) are stacked, centred on their joint mean, and whitened with the Cholesky factor of
``S = X^T X / N + ridge I`` (``x~ = x L^-T``), so no dominant feature direction can swamp the similarity; rows are
then unit-normalised and ``C = x~_cand x~_target^T`` is a cosine, with OT ground cost ``sqrt(2 - 2 C)``.

Whitening a ``d``-dimensional covariance needs many more rows than ``d`` (the spec's pitfall), so features wider
than ``whiten_dim`` are first reduced by a seeded Gaussian projection, which preserves their geometry [O].

Selection:
- fixed size: every target's 1st nearest candidate, then every target's 2nd, ... until the budget; within the
  last, partial round the candidates closest to their target go first [O] (the reference fills it by OT dual
  potential);
- OTM ratio estimation: targets split into folds; for fold ``j`` and ``k = 1, 2, ...`` the union of each fold
  target's top-``k`` candidates (with ``C > 0``) is compared with the *other* folds' targets by exact OT
  (``ot.emd2`` from POT, uniform weights); ``k`` grows while the distance decreases. The union over folds is the
  selection, and its size over the pool the estimated ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl

from curation.errors import CurationError, DataContractError, MissingExtraError
from curation.selection.targeted.features import TargetedFeatures
from curation.selection.targeted.scores import TargetedScores, unit_rows


def _ot() -> Any:
    try:
        import ot
    except ImportError:
        raise MissingExtraError("TAROT's optimal-transport selection needs POT: pip install 'curation[selection]'") from None
    return ot


def whiten(candidates: np.ndarray, targets: np.ndarray, ridge: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Whitened (not yet normalised) candidate and target rows: joint centring, then ``x L^-T`` with
    ``L L^T = X^T X / N + ridge I``, so the stacked rows have covariance ``I - ridge L^-1 L^-T`` (identity up to the ridge)."""
    x = np.concatenate([candidates, targets]).astype(np.float64)
    x = x - x.mean(axis=0)
    cov = x.T @ x / len(x) + ridge * np.eye(x.shape[1])
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise CurationError("TAROT: feature covariance is not positive definite; raise ridge") from None
    from scipy.linalg import solve_triangular

    w = solve_triangular(chol, x.T, lower=True).T
    return w[: len(candidates)], w[len(candidates):]


def averaged_features(features: TargetedFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Candidate and target features averaged over checkpoints (LESS weights), divided by ``sqrt(#params)``."""
    scale = 1.0 / np.sqrt(features.n_params)
    cand = sum(w * f for w, f in zip(features.weights, features.train_sgd, strict=True)) * scale
    tgt = sum(w * f for w, f in zip(features.weights, features.target, strict=True)) * scale
    return np.asarray(cand), np.asarray(tgt)


def wfd_similarity(candidates: np.ndarray, targets: np.ndarray, ridge: float = 1e-5) -> np.ndarray:
    """``[n_cand, n_target]`` cosine similarity in the whitened space."""
    wc, wt = whiten(candidates, targets, ridge)
    return unit_rows(wc) @ unit_rows(wt).T


def fixed_size_order(similarity: np.ndarray, budget: int) -> np.ndarray:
    """Candidates chosen round by round (each target's next-nearest new candidate), ``budget`` rows, in order."""
    n, m = similarity.shape
    if not 0 <= budget <= n:
        raise DataContractError(f"TAROT: budget {budget} must lie in [0, {n}]")
    ranked = np.argsort(-similarity, axis=0, kind="stable")
    taken = np.zeros(n, dtype=bool)
    order: list[int] = []
    for depth in range(n):
        if len(order) >= budget:
            break
        layer = {}
        for t in range(m):
            row = int(ranked[depth, t])
            if not taken[row]:
                layer[row] = max(layer.get(row, -np.inf), similarity[row, t])
        rows = sorted(layer, key=lambda r: (-layer[r], r))[: budget - len(order)]
        taken[rows] = True
        order.extend(rows)
    return np.asarray(order, dtype=np.int64)


def ot_distance(similarity_rows: np.ndarray) -> float:
    """Exact OT cost between uniform selected candidates and uniform targets, ground cost ``sqrt(2 - 2 cos)``."""
    ot = _ot()
    cost = np.sqrt(np.clip(2.0 - 2.0 * similarity_rows, 0.0, None))
    a = np.full(cost.shape[0], 1.0 / cost.shape[0])
    b = np.full(cost.shape[1], 1.0 / cost.shape[1])
    return float(ot.emd2(a, b, cost))


def otm_select(similarity: np.ndarray, *, folds: int = 10, seed: int = 0, max_k: int = 0) -> np.ndarray:
    """Rows chosen by TAROT's OT-based ratio estimation (sorted row indices); see the module docstring."""
    n, m = similarity.shape
    folds = min(folds, m)
    if folds < 2:
        raise DataContractError(f"TAROT ratio estimation needs at least 2 targets, got {m}")
    fold_of = np.random.default_rng(seed).permutation(m) % folds
    ranked = np.argsort(-similarity, axis=0, kind="stable")
    positive = similarity > 0
    chosen = np.zeros(n, dtype=bool)
    for j in range(folds):
        own, other = np.flatnonzero(fold_of == j), np.flatnonzero(fold_of != j)
        best, best_rows = np.inf, np.zeros(0, dtype=np.int64)
        for k in range(1, (max_k or n) + 1):
            rows = np.unique(ranked[:k, own].ravel())
            rows = rows[positive[rows][:, own].any(axis=1)]
            if rows.size == 0:
                continue
            dist = ot_distance(similarity[np.ix_(rows, other)])
            if dist >= best:
                break
            best, best_rows = dist, rows
        chosen[best_rows] = True
    return np.flatnonzero(chosen)


@dataclass(frozen=True, kw_only=True)
class TAROTConfig:
    """Whitening ridge and the selection mode."""

    ridge: float = field(default=1e-5, metadata={"help": "ridge added to the feature covariance before Cholesky"})
    whiten_dim: int = field(default=128, metadata={
        "help": "features wider than this are first reduced by a seeded Gaussian projection (whitening needs many "
                "more rows than dimensions); 0 = never"})
    fraction: float = field(default=0.0, metadata={"help": "fixed selection share; 0 = estimate it (OTM)"})
    folds: int = field(default=10, metadata={"help": "target folds for OTM ratio estimation"})
    seed: int = field(default=0, metadata={"help": "seed of the target folds"})

    def __post_init__(self) -> None:
        if self.ridge <= 0 or not 0 <= self.fraction <= 1 or self.folds < 2 or self.whiten_dim < 0:
            raise ValueError("ridge must be > 0, fraction in [0, 1], folds >= 2 and whiten_dim >= 0")


class TAROTSelector:
    """Registered as ``tarot``: whitened gradient features -> OT-based (or fixed-size) selection."""

    name: ClassVar[str] = "tarot"
    config_cls: ClassVar[type] = TAROTConfig

    def __init__(self, config: TAROTConfig | None = None) -> None:
        self.config = config or TAROTConfig()

    def scores(self, features: TargetedFeatures) -> TargetedScores:
        """WFD similarity as a train x target matrix."""
        cand, tgt = averaged_features(features)
        k = self.config.whiten_dim
        if 0 < k < cand.shape[1]:
            proj = np.random.default_rng(self.config.seed).standard_normal((cand.shape[1], k)) / np.sqrt(k)
            cand, tgt = cand @ proj, tgt @ proj
        return TargetedScores(wfd_similarity(cand, tgt, ridge=self.config.ridge), features.tasks)

    def select(self, features: TargetedFeatures, example_ids: pl.Series) -> pl.DataFrame:
        """``example_id, keep, rank`` in input order (rank = selection order; OTM ranks by best similarity)."""
        sim = self.scores(features).matrix
        n = sim.shape[0]
        if self.config.fraction > 0:
            order = fixed_size_order(sim, int(np.ceil(self.config.fraction * n - 1e-9)))
        else:
            rows = otm_select(sim, folds=self.config.folds, seed=self.config.seed)
            order = rows[np.argsort(-sim[rows].max(axis=1), kind="stable")]
        rank = np.full(n, np.nan)
        rank[order] = np.arange(1, len(order) + 1)
        return pl.DataFrame({"example_id": example_ids, "keep": ~np.isnan(rank),
                             "rank": pl.Series(rank, dtype=pl.Float64).fill_nan(None).cast(pl.Int64)})
