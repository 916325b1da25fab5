"""Per-checkpoint LoRA gradient features of a pool and of a few target examples (shared by LESS, GIST, TAROT, BIDS).

For every warm-up checkpoint ``k`` and pool example ``z`` the per-example LoRA gradient ``g`` (``torch.func``, via
``curation.gradients.per_example``) gives two features, both randomly projected with one seeded projector:

- ``train_adam[k]``: LESS's Adam-preconditioned update from the checkpoint's own moments
  ``m' = b1 m + (1-b1) g``, ``v' = b2 v + (1-b2) g^2``, ``u = m' / sqrt(v' + eps)``;
- ``train_sgd[k]``: the plain gradient (GIST and TAROT use it).

Target examples always get plain gradients (``target[k]``). ``tasks`` labels each target row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from curation.errors import DataContractError
from curation.gradients.per_example import per_example_gradients
from curation.gradients.projection import ProjectionConfig, Projector
from curation.models.base import ModelAdapter
from curation.progress import progress_bar
from curation.selection.targeted.warmup import Warmup

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """Projection and batching of the LoRA gradient features."""

    proj_dim: int = field(default=8192, metadata={"help": "random-projection width k; 0 = keep the raw gradient"})
    projection: str = field(default="rademacher", metadata={"help": "gaussian | rademacher | sjlt"})
    seed: int = field(default=0, metadata={"help": "seed of the projection (pool and targets share it)"})
    batch_size: int = field(default=16, metadata={"help": "examples per vmap batch"})

    def __post_init__(self) -> None:
        if self.proj_dim < 0 or self.batch_size < 1:
            raise ValueError("proj_dim must be >= 0 and batch_size >= 1")


@dataclass
class TargetedFeatures:
    """Features per checkpoint: ``train_adam[k]``, ``train_sgd[k]`` ``[n, d]``, ``target[k]`` ``[m, d]``."""

    train_adam: list[np.ndarray]
    train_sgd: list[np.ndarray]
    target: list[np.ndarray]
    weights: np.ndarray
    tasks: np.ndarray
    n_params: int


def adam_update(g: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor) -> torch.Tensor:
    """LESS's Adam-preconditioned update of per-example gradients ``g [b, p]`` from a checkpoint's moments ``[p]``."""
    m = BETA1 * exp_avg + (1 - BETA1) * g
    v = BETA2 * exp_avg_sq + (1 - BETA2) * g.square()
    return m / torch.sqrt(v + EPS)


def task_labels(targets: pl.DataFrame, task_column: str) -> np.ndarray:
    """The task of each target row (one-line error when the column is missing or null)."""
    if task_column not in targets.columns:
        raise DataContractError(f"targets: missing task column '{task_column}' (columns: {', '.join(targets.columns)})")
    if targets[task_column].null_count():
        row = int(np.flatnonzero(targets[task_column].is_null().to_numpy())[0])
        raise DataContractError(f"targets: row {row}: task column '{task_column}' is null")
    return targets[task_column].cast(pl.Utf8).to_numpy()


def compute_features(adapter: ModelAdapter, warmup: Warmup, pool: pl.DataFrame, targets: pl.DataFrame,
                     cfg: FeatureConfig, *, task_column: str = "task", show_progress: bool = False) -> TargetedFeatures:
    """Projected LoRA gradient features of ``pool`` and ``targets`` at every warm-up checkpoint."""
    tasks = task_labels(targets, task_column)
    modules = warmup.lora_modules
    projector: Projector | None = None
    adam, sgd, tgt = [], [], []
    steps = len(warmup.checkpoints) * (-(-pool.height // cfg.batch_size) + -(-targets.height // cfg.batch_size))
    with progress_bar(total=steps, description="LoRA gradients", enabled=show_progress) as advance:
        for k, ckpt in enumerate(warmup.checkpoints):
            warmup.load(k)
            chunks_adam, chunks_sgd, chunks_tgt = [], [], []
            for frame, is_pool in ((pool, True), (targets, False)):
                for start in range(0, frame.height, cfg.batch_size):
                    batch = adapter.collate(frame[start:start + cfg.batch_size])
                    g = per_example_gradients(adapter, warmup.model, batch, modules=modules).detach()
                    if projector is None:
                        kind = "identity" if cfg.proj_dim == 0 else cfg.projection
                        projector = Projector(g.shape[1], ProjectionConfig(kind=kind, dim=max(cfg.proj_dim, 1),
                                                                           seed=cfg.seed))
                    if is_pool:
                        chunks_adam.append(projector(adam_update(g, ckpt.exp_avg, ckpt.exp_avg_sq)).numpy())
                        chunks_sgd.append(projector(g).numpy())
                    else:
                        chunks_tgt.append(projector(g).numpy())
                    advance(1)
            adam.append(np.concatenate(chunks_adam).astype(np.float32))
            sgd.append(np.concatenate(chunks_sgd).astype(np.float32))
            tgt.append(np.concatenate(chunks_tgt).astype(np.float32))
    assert projector is not None
    return TargetedFeatures(train_adam=adam, train_sgd=sgd, target=tgt, weights=warmup.weights, tasks=tasks,
                            n_params=projector.n_params)
