"""Influence functions with conjugate gradient: ``(H + λI)⁻¹ v`` from Hessian-vector products only.

Never forms the Hessian, so it scales to models where ``influence_exact`` cannot. Each Hessian-vector product is
forward-over-reverse (``torch.func.jvp`` of ``grad``) over the whole training table, vectorised over all
right-hand sides at once; every column runs its own CG recursion and stops at its own tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from curation.attribution.base import ScoreResult, ScoringContext, SelfInfluenceFromScore
from curation.attribution.ihvp import Solver, score_with_solver
from curation.attribution.objective import TrainingObjective
from curation.errors import CurationError


@dataclass(frozen=True, kw_only=True)
class CGInfluenceConfig:
    """Settings of the conjugate-gradient influence function."""

    damping: float = field(default=1e-3, metadata={"help": "λ added to the Hessian diagonal (>= 0)"})
    curvature: Literal["hessian", "gauss_newton"] = field(
        default="hessian", metadata={"help": "hessian, or gauss_newton (PSD; for non-convex models)"}
    )
    max_iter: int = field(default=200, metadata={"help": "CG iterations at most per right-hand side"})
    tol: float = field(default=1e-6, metadata={"help": "stop when ||residual|| <= tol * ||rhs||"})
    self_influence: bool = field(
        default=False, metadata={"help": "also compute self-influence (one CG solve per training example)"}
    )

    def __post_init__(self) -> None:
        if self.damping < 0 or self.max_iter < 1 or self.tol <= 0:
            raise ValueError("damping must be >= 0, max_iter >= 1 and tol > 0")


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, *, tol: float, max_iter: int
) -> tuple[torch.Tensor, int, float]:
    """Solve ``A X = B`` column by column for symmetric positive-definite ``A`` given as ``matvec``.

    Returns ``(X, iterations, worst relative residual)``. Negative curvature raises ``CurationError``.
    """
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rs = (r * r).sum(0)
    norm_b = rhs.norm(dim=0).clamp_min(torch.finfo(rhs.dtype).tiny)
    it = 0
    for it in range(1, max_iter + 1):
        active = rs.sqrt() / norm_b > tol
        if not bool(active.any()):
            it -= 1
            break
        ap = matvec(p)
        pap = (p * ap).sum(0)
        if bool((pap[active] <= 0).any()):
            raise CurationError(
                "influence_cg: H + λI has negative curvature; raise 'damping' or use curvature: gauss_newton"
            )
        alpha = torch.where(active, rs / torch.where(active, pap, 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        rs_new = (r * r).sum(0)
        beta = torch.where(active, rs_new / torch.where(active, rs, 1.0), 0.0)
        p = r + beta * p
        rs = rs_new
    return x, it, float((rs.sqrt() / norm_b).max())


class CGInfluence(SelfInfluenceFromScore):
    """Scorer ``influence_cg``: conjugate gradient on Hessian-vector products."""

    name: ClassVar[str] = "influence_cg"
    config_cls: ClassVar[type] = CGInfluenceConfig

    def __init__(self, config: CGInfluenceConfig | None = None) -> None:
        self.config = config or CGInfluenceConfig()

    def score(self, context: ScoringContext) -> ScoreResult:
        cfg = self.config
        extras: dict = {"damping": cfg.damping, "cg_iterations": 0, "cg_relative_residual": 0.0}

        def make_solver(objective: TrainingObjective) -> Solver:
            def solve(rhs: torch.Tensor) -> torch.Tensor:
                x, iters, residual = conjugate_gradient(
                    lambda v: objective.hvp(v) + cfg.damping * v, rhs, tol=cfg.tol, max_iter=cfg.max_iter
                )
                extras["cg_iterations"] = max(extras["cg_iterations"], iters)
                extras["cg_relative_residual"] = max(extras["cg_relative_residual"], residual)
                return x

            return solve

        return score_with_solver(context, make_solver, self_influence=cfg.self_influence,
                                 curvature=cfg.curvature, extras=extras)
