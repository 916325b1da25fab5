"""Unlearning operators over any ``ModelAdapter``: exact retrain, gradient ascent / difference, IAU.

- ``retrain``: train a fresh model on the retain set only: the gold standard every approximate method is judged
  against (expensive, exact).
- ``finetune``: continue training the original on the retain set only with the ``train`` settings (the "FT"
  baseline of the unlearning literature): with a large learning rate the rows no longer seen are forgotten the way
  a retrain never learns them (catastrophic forgetting), at a fraction of a retrain's epochs.
- ``gradient_ascent``: ascend the forget-set loss for a few mini-batch steps; with ``retain_weight > 0`` it also
  descends the retain loss in the same step ("gradient difference"), which limits collateral damage.
- ``iau``: Influence Approximation Unlearning (methods spec section 6.2, as released): a few *full-batch* Adam steps
  on ``retain_weight * mean retain loss - forget_weight * mean forget loss`` from the trained model.

Each operator returns a new model; ``save_unlearned`` writes it as a self-describing safetensors checkpoint whose
metadata records the method, the forget-request size and the base checkpoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.config import to_dict
from curation.models.base import ModelAdapter, adapter_model_config
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.progress import progress_bar
from curation.training import TrainConfig, train

Method = Literal["retrain", "finetune", "gradient_ascent", "gradient_difference", "iau"]


@dataclass(frozen=True, kw_only=True)
class UnlearnConfig:
    """Which operator to apply and its settings."""

    method: Method = field(default="iau", metadata={"help": "retrain | finetune | gradient_ascent | gradient_difference | iau"})
    steps: int = field(default=1, metadata={"help": "optimiser steps (gradient ascent/difference, IAU)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "step size of the unlearning optimiser"})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"help": "sgd or adam"})
    batch_size: int = field(default=32, metadata={"help": "mini-batch size (gradient ascent/difference)"})
    forget_weight: float = field(default=1.0, metadata={"help": "weight of the (ascended) forget loss"})
    retain_weight: float = field(
        default=1.0, metadata={"help": "weight of the descended retain loss (ignored by pure gradient_ascent)"}
    )
    max_retain: int = field(default=0, metadata={"help": "IAU: retain rows per full-batch step; 0 = all"})
    seed: int = field(default=0, metadata={"help": "seed for mini-batch order / retain sampling"})
    train: TrainConfig = field(
        default_factory=TrainConfig, metadata={"help": "retrain / finetune: training settings on the retain rows"}
    )

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("steps, batch_size and learning_rate must be positive")
        if self.forget_weight < 0 or self.retain_weight < 0 or self.max_retain < 0:
            raise ValueError("forget_weight, retain_weight and max_retain must be >= 0")


@dataclass
class UnlearnResult:
    """An unlearned model and how it was made."""

    model: nn.Module
    method: str
    seconds: float
    n_forget: int
    n_retain: int


def unlearn(
    adapter: ModelAdapter, model: nn.Module | None, forget: pl.DataFrame, retain: pl.DataFrame, cfg: UnlearnConfig
) -> UnlearnResult:
    """Apply ``cfg.method`` to a copy of ``model`` (``retrain`` ignores it and trains from scratch on ``retain``;
    ``finetune`` continues training the copy on ``retain``)."""
    started = time.monotonic()
    if cfg.method == "retrain":
        new = train(adapter, retain, cfg.train, show_progress=False).model
    elif model is None:
        raise ValueError(f"{cfg.method} needs the trained model to start from")
    elif cfg.method == "finetune":
        new = train(adapter, retain, cfg.train, model=copy.deepcopy(model), show_progress=False).model
    elif cfg.method == "iau":
        new = iau(adapter, model, forget, retain, cfg)
    else:
        new = gradient_ascent(adapter, model, forget, retain if cfg.method == "gradient_difference" else None, cfg)
    new.eval()
    return UnlearnResult(new, cfg.method, time.monotonic() - started, forget.height, retain.height)


def _optimizer(cfg: UnlearnConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.learning_rate)
    return torch.optim.Adam(params, lr=cfg.learning_rate)


def _batches(n: int, size: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``steps`` mini-batches of row indices, cycling through fresh permutations of ``range(n)``."""
    order = np.concatenate([rng.permutation(n) for _ in range(-(-steps * size // n) + 1)])
    return [order[i * size : (i + 1) * size] for i in range(steps)]


def gradient_ascent(
    adapter: ModelAdapter, model: nn.Module, forget: pl.DataFrame, retain: pl.DataFrame | None, cfg: UnlearnConfig
) -> nn.Module:
    """Mini-batch ascent on the forget loss; with ``retain`` also descent on the retain loss (gradient difference)."""
    new = copy.deepcopy(model)
    new.train()
    opt = _optimizer(cfg, [p for p in new.parameters() if p.requires_grad])
    rng = np.random.default_rng(cfg.seed)
    f_batches = _batches(forget.height, min(cfg.batch_size, forget.height), cfg.steps, rng)
    r_batches = _batches(retain.height, min(cfg.batch_size, retain.height), cfg.steps, rng) if retain is not None else None
    with progress_bar(total=cfg.steps, description=cfg.method) as advance:
        for step in range(cfg.steps):
            loss = -cfg.forget_weight * adapter.example_losses(new, adapter.collate(forget[f_batches[step]])).mean()
            if r_batches is not None and cfg.retain_weight > 0:
                retain_batch = adapter.collate(retain[r_batches[step]])
                loss = loss + cfg.retain_weight * adapter.example_losses(new, retain_batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            advance(1)
    return new


def iau(
    adapter: ModelAdapter, model: nn.Module, forget: pl.DataFrame, retain: pl.DataFrame, cfg: UnlearnConfig
) -> nn.Module:
    """IAU: ``cfg.steps`` full-batch steps on ``retain_weight * mean l(D_r) - forget_weight * mean l(D_f)``.

    The forget-set ascent is the incremental approximation of removing the samples (adding virtual samples with
    negated gradients); the retain-set descent in the same update is the gradient correction.
    """
    new = copy.deepcopy(model)
    new.train()
    opt = _optimizer(cfg, [p for p in new.parameters() if p.requires_grad])
    rng = np.random.default_rng(cfg.seed)
    forget_batch = adapter.collate(forget)
    for _ in range(cfg.steps):
        rows = retain
        if cfg.max_retain and retain.height > cfg.max_retain:
            rows = retain[np.sort(rng.choice(retain.height, cfg.max_retain, replace=False))]
        loss = -cfg.forget_weight * adapter.example_losses(new, forget_batch).mean()
        if cfg.retain_weight > 0 and rows.height:
            loss = loss + cfg.retain_weight * adapter.example_losses(new, adapter.collate(rows)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return new


def save_unlearned(
    path: str | Path, adapter: ModelAdapter, result: UnlearnResult, cfg: UnlearnConfig, *, base: str = ""
) -> Path:
    """Write the unlearned model as a safetensors checkpoint with the operator, its config and the base model."""
    extra = {
        "unlearning_method": result.method,
        "unlearning_config": to_dict(cfg),
        "n_forget": result.n_forget,
        "n_retain": result.n_retain,
        "base_checkpoint": base,
    }
    info = CheckpointInfo(
        adapter=adapter.name, model_config=adapter_model_config(adapter), step=cfg.steps,
        learning_rate=cfg.learning_rate, extra=extra,
    )
    return save_checkpoint(path, result.model.state_dict(), info)
