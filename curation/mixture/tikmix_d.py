"""TiKMiX-D: the next domain mixture by direct optimisation of group influence on the simplex (SLSQP).

With ``P = S·w`` and ``P̂_i = P_i / (max_j S_ij + ε)`` (``normalization: max``, the paper; ``prior_gain`` measures
each task's gain over the prior mixture instead, see ``normalize_per_task``) it minimises
``L(w) = α·std(P̂) − β·Σ_i P̂_i − γ·H(w)`` (balance across tasks, total gain, entropy ``H(w) = −Σ w log w``) subject
to ``Σ w = 1``, ``w ≥ 0`` and the no-task-worse (Pareto) constraint ``S·w ≥ S·w_prior``, starting from uniform.
Defaults ``α = β = γ = 1`` follow the paper. Optional per-domain floor/cap relative to the prior (not in the paper)
keep a production mixture from collapsing. If SLSQP fails, the prior is returned and ``success`` is False.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import minimize

from curation.errors import CurationError
from curation.mixture.group_influence import normalize_per_task

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TikmixDConfig:
    """Objective weights and constraints of TiKMiX-D."""

    alpha: float = field(default=1.0, metadata={"help": "weight of std(P̂) (balance across tasks)"})
    beta: float = field(default=1.0, metadata={"help": "weight of Σ P̂ (total influence)"})
    gamma: float = field(default=1.0, metadata={"help": "weight of the mixture entropy (diversity)"})
    eps: float = field(default=1e-8, metadata={"help": "ε of the per-task normalisation"})
    normalization: Literal["max", "prior_gain"] = field(default="max", metadata={
        "help": "max: S / max_j S (the paper); prior_gain: gain over the prior mixture / largest achievable gain"})
    pareto: bool = field(default=True, metadata={"help": "require S·w >= S·w_prior (no task gets less influence)"})
    floor_ratio: float = field(default=0.0, metadata={"help": "w_j >= floor_ratio × prior_j (0 = no floor)"})
    cap_ratio: float = field(default=0.0, metadata={"help": "w_j <= cap_ratio × prior_j (0 = no cap)"})
    max_iter: int = field(default=500, metadata={"help": "SLSQP iterations"})

    def __post_init__(self) -> None:
        if min(self.alpha, self.beta, self.gamma, self.floor_ratio, self.cap_ratio) < 0 or self.eps <= 0:
            raise ValueError("alpha, beta, gamma, floor_ratio, cap_ratio must be >= 0 and eps > 0")
        if (self.cap_ratio and self.cap_ratio < 1) or self.floor_ratio > 1:
            raise ValueError("cap_ratio must be >= 1 (or 0) and floor_ratio <= 1")
        if self.normalization not in ("max", "prior_gain"):
            raise ValueError(f"normalization must be max or prior_gain, got {self.normalization!r}")


@dataclass(frozen=True)
class MixtureSolution:
    """An optimiser's mixture and diagnostics."""

    weights: np.ndarray
    success: bool
    message: str
    objective: float
    extras: dict = field(default_factory=dict)


def entropy(w: np.ndarray) -> float:
    """``−Σ w log w`` with ``w`` clipped at 1e-12."""
    w = np.clip(w, 1e-12, None)
    return float(-(w * np.log(w)).sum())


def tikmix_objective(w: np.ndarray, s_hat: np.ndarray, cfg: TikmixDConfig) -> float:
    """``α·std(P̂) − β·Σ P̂ − γ·H(w)`` for normalised influences ``s_hat`` (``[n_tasks, n_domains]``)."""
    p_hat = s_hat @ w
    return float(cfg.alpha * p_hat.std() - cfg.beta * p_hat.sum() - cfg.gamma * entropy(w))


def tikmix_d(matrix: np.ndarray, prior: Sequence[float] | None = None, cfg: TikmixDConfig | None = None,
             *, tasks: Sequence[str] | None = None) -> MixtureSolution:
    """Mixture weights (sum 1) maximising balanced total group influence plus entropy."""
    cfg = cfg or TikmixDConfig()
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or 0 in matrix.shape or not np.isfinite(matrix).all():
        raise CurationError(f"influence matrix must be a finite [tasks, domains] array, got shape {matrix.shape}")
    m = matrix.shape[1]
    prior_w = np.full(m, 1.0 / m) if prior is None else np.asarray(prior, dtype=np.float64)
    if prior_w.shape != (m,) or (prior_w < 0).any() or prior_w.sum() <= 0:
        raise CurationError(f"prior mixture must have {m} non-negative weights, got {prior_w.tolist()}")
    prior_w = prior_w / prior_w.sum()
    s_hat = normalize_per_task(matrix, cfg.eps, tasks=tasks,
                               baseline=prior_w if cfg.normalization == "prior_gain" else None)

    lower = cfg.floor_ratio * prior_w if cfg.floor_ratio else np.zeros(m)
    upper = np.minimum(cfg.cap_ratio * prior_w, 1.0) if cfg.cap_ratio else np.ones(m)
    constraints = [{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}]
    if cfg.pareto:
        # scaled by the normalisation so every task's constraint has a comparable magnitude
        constraints.append({"type": "ineq", "fun": lambda w: s_hat @ (w - prior_w), "jac": lambda w: s_hat})
    start = np.full(m, 1.0 / m)
    res = minimize(tikmix_objective, start, args=(s_hat, cfg), method="SLSQP", bounds=list(zip(lower, upper)),
                   constraints=constraints, options={"maxiter": cfg.max_iter, "ftol": 1e-10})
    w = np.clip(res.x, 0.0, None)
    w = w / w.sum() if w.sum() > 0 else prior_w
    feasible = bool(np.all(s_hat @ (w - prior_w) >= -1e-6)) if cfg.pareto else True
    if not (res.success and feasible):
        log.warning("TiKMiX-D: SLSQP did not find a feasible optimum (%s); keeping the prior mixture", res.message)
        return MixtureSolution(prior_w, False, str(res.message), tikmix_objective(prior_w, s_hat, cfg))
    return MixtureSolution(w, True, str(res.message), tikmix_objective(w, s_hat, cfg),
                           {"predicted_gain": (s_hat @ w).tolist(), "prior_gain": (s_hat @ prior_w).tolist()})
