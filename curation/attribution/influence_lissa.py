"""Influence functions with LiSSA: a stochastic Neumann-series estimate of ``(H + λI)⁻¹ v``.

Recursion (Agarwal et al.; as in the methods spec): ``h_0 = v``, ``h_t = v + (I − (H_t + λI)/s) h_{t−1}``,
result ``h_T / s``, averaged over ``repeats``; ``H_t`` is the Hessian of the mean loss on a fresh random
minibatch drawn without replacement. It converges only when ``s`` exceeds the largest eigenvalue of ``H_t + λI``, so ``scale: null``
estimates the top eigenvalue of the full Hessian by power iteration and uses ``scale_margin`` times it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from curation.attribution.base import ScoreResult, ScoringContext, SelfInfluenceFromScore
from curation.attribution.ihvp import Solver, score_with_solver
from curation.attribution.objective import TrainingObjective
from curation.errors import CurationError
from curation.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class LiSSAInfluenceConfig:
    """Settings of the LiSSA influence function."""

    damping: float = field(default=1e-3, metadata={"help": "λ added to the Hessian diagonal (>= 0)"})
    curvature: Literal["hessian", "gauss_newton"] = field(
        default="hessian", metadata={"help": "hessian, or gauss_newton (PSD; for non-convex models)"}
    )
    depth: int = field(default=1000, metadata={"help": "recursion steps T"})
    batch_size: int = field(default=64, metadata={"help": "examples per stochastic Hessian H_t"})
    repeats: int = field(default=1, metadata={"help": "independent recursions averaged"})
    scale: float | None = field(
        default=None, metadata={"help": "s; null = scale_margin x top Hessian eigenvalue (power iteration)"}
    )
    scale_margin: float = field(default=3.0, metadata={"help": "safety factor for the automatic scale"})
    seed: int = field(default=0, metadata={"help": "seed for the minibatch draws"})
    self_influence: bool = field(
        default=False, metadata={"help": "also compute self-influence (one recursion per training example)"}
    )

    def __post_init__(self) -> None:
        if self.damping < 0 or self.depth < 1 or self.batch_size < 1 or self.repeats < 1:
            raise ValueError("damping must be >= 0 and depth, batch_size, repeats >= 1")
        if (self.scale is not None and self.scale <= 0) or self.scale_margin < 1:
            raise ValueError("scale must be > 0 and scale_margin >= 1")


def top_eigenvalue(objective: TrainingObjective, *, iters: int = 30, seed: int = 0) -> float:
    """Largest-magnitude eigenvalue of the full-data Hessian by power iteration."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(objective.dim, 1, generator=gen, dtype=objective.theta.dtype)
    v /= v.norm()
    value = 0.0
    for _ in range(iters):
        hv = objective.hvp(v)
        value = float((v * hv).sum())
        v = hv / hv.norm().clamp_min(1e-30)
    return abs(value)


class LiSSAInfluence(SelfInfluenceFromScore):
    """Scorer ``influence_lissa``: stochastic recursion with damping and scale."""

    name: ClassVar[str] = "influence_lissa"
    config_cls: ClassVar[type] = LiSSAInfluenceConfig

    def __init__(self, config: LiSSAInfluenceConfig | None = None) -> None:
        self.config = config or LiSSAInfluenceConfig()

    def score(self, context: ScoringContext) -> ScoreResult:
        cfg = self.config
        extras: dict = {"damping": cfg.damping}

        def make_solver(objective: TrainingObjective) -> Solver:
            scale = cfg.scale
            if scale is None:
                scale = cfg.scale_margin * (top_eigenvalue(objective, seed=cfg.seed) + cfg.damping)
            extras["scale"] = scale
            full = context.adapter.collate(context.train)
            n = context.train.height

            def solve(rhs: torch.Tensor) -> torch.Tensor:
                gen = torch.Generator().manual_seed(cfg.seed)
                total = torch.zeros_like(rhs)
                with progress_bar(total=cfg.repeats * cfg.depth, description="LiSSA recursion") as advance:
                    for _ in range(cfg.repeats):
                        h = rhs.clone()
                        for _ in range(cfg.depth):
                            idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
                            batch = {k: v[idx] for k, v in full.items()}
                            hv = objective.hvp_on(h, [batch]) / idx.numel() + cfg.damping * h
                            h = rhs + h - hv / scale
                            advance(1)
                        if not bool(torch.isfinite(h).all()):
                            raise CurationError(f"influence_lissa: recursion diverged with scale={scale:.3g}; "
                                                "raise 'scale' or 'scale_margin'")
                        total += h / scale
                return total / cfg.repeats

            return solve

        return score_with_solver(context, make_solver, self_influence=cfg.self_influence,
                                 curvature=cfg.curvature, extras=extras)
