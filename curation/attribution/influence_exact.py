"""Influence functions with an explicit damped Hessian (small models: the Hessian is ``P x P``).

The Hessian of the mean training loss over the tracked parameters is built from Hessian-vector products, then
eigendecomposed once so that ``(H + λI)⁻¹`` applies to any number of vectors (queries and, for self-influence,
every training example). The damping must make ``H + λI`` positive definite; for an L2-regularised convex model
set it to the regularisation strength to recover the exact objective Hessian.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from curation.attribution.base import ScoreResult, ScoringContext, SelfInfluenceFromScore
from curation.attribution.ihvp import Solver, score_with_solver
from curation.attribution.objective import TrainingObjective
from curation.errors import CurationError


@dataclass(frozen=True, kw_only=True)
class ExactInfluenceConfig:
    """Settings of the explicit-Hessian influence function."""

    damping: float = field(default=1e-3, metadata={"help": "λ added to the Hessian diagonal (>= 0)"})
    curvature: Literal["hessian", "gauss_newton"] = field(
        default="hessian", metadata={"help": "hessian, or gauss_newton (PSD; for non-convex models)"}
    )
    max_params: int = field(
        default=20_000, metadata={"help": "refuse models with more tracked parameters (the Hessian is P x P)"}
    )
    self_influence: bool = field(default=True, metadata={"help": "also compute self-influence of each example"})

    def __post_init__(self) -> None:
        if self.damping < 0 or self.max_params < 1:
            raise ValueError("damping must be >= 0 and max_params >= 1")


def damped_inverse_solver(hessian: torch.Tensor, damping: float) -> tuple[Solver, float]:
    """A solver for ``(H + λI) x = b`` via the eigendecomposition of ``H``; also returns ``min eig(H)``."""
    evals, evecs = torch.linalg.eigh(hessian)
    shifted = evals + damping
    if float(shifted.min()) <= 0:
        raise CurationError(
            f"influence_exact: damping={damping} leaves H + λI indefinite (min eigenvalue of H is "
            f"{float(evals.min()):.3g}); raise 'damping' above {-float(evals.min()):.3g} or use curvature: gauss_newton"
        )

    def solve(rhs: torch.Tensor) -> torch.Tensor:
        return evecs @ ((evecs.T @ rhs) / shifted.unsqueeze(1))

    return solve, float(evals.min())


class ExactInfluence(SelfInfluenceFromScore):
    """Scorer ``influence_exact``: explicit damped Hessian of the training objective."""

    name: ClassVar[str] = "influence_exact"
    config_cls: ClassVar[type] = ExactInfluenceConfig

    def __init__(self, config: ExactInfluenceConfig | None = None) -> None:
        self.config = config or ExactInfluenceConfig()

    def score(self, context: ScoringContext) -> ScoreResult:
        extras: dict = {"damping": self.config.damping}

        def make_solver(objective: TrainingObjective) -> Solver:
            if objective.dim > self.config.max_params:
                raise CurationError(
                    f"influence_exact: {objective.dim} tracked parameters exceed max_params="
                    f"{self.config.max_params}; use influence_cg, influence_lissa or ekfac"
                )
            solve, min_eig = damped_inverse_solver(objective.hessian(), self.config.damping)
            extras["hessian_min_eigenvalue"] = min_eig
            return solve

        return score_with_solver(context, make_solver, self_influence=self.config.self_influence,
                                 curvature=self.config.curvature, extras=extras)
