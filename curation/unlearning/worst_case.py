"""Worst-case forget sets (Challenging Forgets, methods spec section 5): the forget set of a given size that a
given unlearning operator is worst at erasing.

Bi-level problem over a relaxed selection ``w in [0,1]^N`` with ``sum(w) = m``:

- lower level (the unlearner): starting from the trained model, ``inner_steps`` of **sign-SGD** on the operator's
  ``w``-weighted objective (gradient ascent: ``-sum w_i l_i / sum w``; gradient difference adds the ``1 - w``
  weighted retain loss; finetune uses only the retain part);
  The relaxed ``w`` starts uniform (``m / N``), so the first lower level unlearns the whole pool evenly.
- upper level (the adversary): minimise ``sum w_i l(theta_u(w); z_i) + gamma ||w||^2``, i.e. choose examples whose
  loss stays low after unlearning. Because sign-SGD has zero derivative almost everywhere, the implicit gradient
  vanishes and the upper gradient is ``l(theta_u; z_i) + 2 gamma w_i``; a projected step (bisection on a shift)
  keeps ``w`` in the capped simplex, and the top-``m`` of ``w`` is the selected set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.models.base import ModelAdapter
from curation.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class WorstCaseConfig:
    """Search settings (defaults: the released code's learning rates, the spec's CPU protocol step counts)."""

    size: int = field(metadata={"help": "forget-set size m"})
    operator: Literal["gradient_ascent", "gradient_difference", "finetune"] = field(
        default="gradient_ascent", metadata={"help": "lower-level unlearning objective"}
    )
    outer_steps: int = field(default=5, metadata={"help": "upper-level (selection) iterations"})
    inner_steps: int = field(default=10, metadata={"help": "sign-SGD steps of the lower level"})
    theta_lr: float = field(default=1e-3, metadata={"help": "sign-SGD step size"})
    w_lr: float = field(default=0.1, metadata={"help": "step size of the selection update (code default 0.01)"})
    gamma: float = field(default=1e-4, metadata={"help": "L2 penalty on w"})
    batch_size: int = field(default=0, metadata={"help": "rows per lower-level step; 0 = the whole pool"})
    seed: int = field(default=0, metadata={"help": "seed of the lower-level mini-batches"})

    def __post_init__(self) -> None:
        if self.size < 1 or self.outer_steps < 1 or self.inner_steps < 1 or self.theta_lr <= 0 or self.w_lr <= 0:
            raise ValueError("size, outer_steps, inner_steps, theta_lr and w_lr must be positive")


def project_capped_simplex(a: np.ndarray, m: float, *, iters: int = 100) -> np.ndarray:
    """Euclidean projection onto ``{w in [0,1]^N : sum w = m}``: ``clip(a - mu, 0, 1)`` with ``mu`` by bisection."""
    lo, hi = float(a.min()) - 1.0, float(a.max())
    for _ in range(iters):
        mu = (lo + hi) / 2
        if np.clip(a - mu, 0, 1).sum() > m:
            lo = mu
        else:
            hi = mu
    return np.clip(a - (lo + hi) / 2, 0, 1)


def _objective(losses: torch.Tensor, w: torch.Tensor, operator: str) -> torch.Tensor:
    forget = -(w * losses).sum() / w.sum().clamp_min(1e-12)
    retain = ((1 - w) * losses).sum() / (1 - w).sum().clamp_min(1e-12)
    if operator == "gradient_ascent":
        return forget
    if operator == "gradient_difference":
        return forget + retain
    return retain


def sign_sgd_unlearn(
    adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame, w: np.ndarray, cfg: WorstCaseConfig,
    rng: np.random.Generator,
) -> nn.Module:
    """Lower level: ``inner_steps`` of sign-SGD on the ``w``-weighted operator objective from a copy of ``model``."""
    new = copy.deepcopy(model)
    new.train()
    params = [p for p in new.parameters() if p.requires_grad]
    weights = torch.as_tensor(w)
    for _ in range(cfg.inner_steps):
        rows = np.arange(pool.height) if not cfg.batch_size else rng.choice(pool.height, cfg.batch_size, replace=False)
        losses = adapter.example_losses(new, adapter.collate(pool[rows]))
        loss = _objective(losses, weights[rows].to(losses.dtype), cfg.operator)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(cfg.theta_lr * g.sign())
    new.eval()
    return new


@torch.no_grad()
def _pool_losses(adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame, chunk: int = 256) -> np.ndarray:
    return np.concatenate([
        adapter.example_losses(model, adapter.collate(pool[i : i + chunk])).double().numpy()
        for i in range(0, pool.height, chunk)
    ])


def worst_case_forget_set(
    adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame, cfg: WorstCaseConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Search the hardest forget set of ``cfg.size`` rows of ``pool`` for the operator.

    Returns ``(selection, history)``: ``example_id, difficulty, selected`` (difficulty = final relaxed ``w``) and
    per outer step the mean post-unlearning loss of the selected rows (the adversary's objective, lower = harder).
    """
    n, m = pool.height, cfg.size
    if not 0 < m < n:
        raise ValueError(f"size must be in 1..{n - 1}, got {m}")
    rng = np.random.default_rng(cfg.seed)
    w = np.full(n, m / n)
    history = []
    with progress_bar(total=cfg.outer_steps, description="worst-case forget set") as advance:
        for step in range(cfg.outer_steps):
            unlearned = sign_sgd_unlearn(adapter, model, pool, w, cfg, rng)
            losses = _pool_losses(adapter, unlearned, pool)
            top = np.argsort(-w, kind="stable")[:m]
            history.append({"outer_step": step, "selected_loss": float(losses[top].mean()),
                            "pool_loss": float(losses.mean())})
            w = project_capped_simplex(w - cfg.w_lr * (losses + 2 * cfg.gamma * w), m)
            advance(1)
    selected = np.zeros(n, dtype=bool)
    selected[np.argsort(-w, kind="stable")[:m]] = True
    selection = pl.DataFrame({"example_id": pool["example_id"], "difficulty": w, "selected": selected})
    return selection, pl.DataFrame(history)
