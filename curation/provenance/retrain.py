"""Train a model on rows in an explicitly given order (no shuffling), for provenance experiments.

The palimpsest observational test (b) retrains the last phase of a run from the checkpoint before it, once in
the original order and K times in reshuffled orders; every retrain must use this same procedure (same optimiser,
learning rate and batch size) so the K+1 models are exchangeable under the null. The demo also uses it to derive
a suspect (continued training on other text), and ``train_from_scratch`` trains the query test's reference and null
bank: one task per model, so ``curation.executors`` can run them as Ray tasks.
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


@dataclass(frozen=True, kw_only=True)
class OrderedTrainConfig:
    """Optimisation settings of an explicit-order training phase (constant learning rate)."""

    learning_rate: float = field(default=1e-3, metadata={"help": "constant learning rate"})
    batch_size: int = field(default=16, metadata={"help": "examples per step"})
    optimizer: Literal["adamw", "sgd"] = field(default="adamw", metadata={"help": "adamw or sgd (no momentum)"})
    seed: int = field(default=0, metadata={"help": "torch seed (dropout only; the order is given)"})

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.batch_size < 1:
            raise ValueError("learning_rate and batch_size must be positive")


def train_in_order(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, cfg: OrderedTrainConfig, *, copy_model: bool = True
) -> nn.Module:
    """Train on ``frame``'s rows in row order, ``cfg.batch_size`` at a time; returns the (copied) trained model."""
    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(model) if copy_model else model
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.learning_rate)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    model.train()
    for start in range(0, frame.height, cfg.batch_size):
        batch = adapter.collate(frame.slice(start, cfg.batch_size))
        loss = adapter.example_losses(model, batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model


@dataclass(frozen=True)
class ScratchModel:
    """One model trained from scratch for one epoch on a seeded shuffle of a table; ``seed`` sets both its
    initialisation and its order."""

    name: str
    seed: int
    adapter: ModelAdapter
    recipe: OrderedTrainConfig


def train_from_scratch(job: ScratchModel, *, frame: pl.DataFrame) -> dict[str, torch.Tensor]:
    """``job``'s trained weights: a pure function of its inputs (an executor task). Bit-identical for the same
    torch thread count; a Ray worker's single thread rounds differently, and a full epoch amplifies that into other
    (equally valid, equally independent) weights: 0.32 largest difference on the demo's bank
    (``benchmarks/provenance/bank_executor.py``)."""
    torch.manual_seed(job.seed)
    model = train_in_order(job.adapter, job.adapter.build_model(), reshuffled(frame, job.seed), job.recipe,
                           copy_model=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def in_order(frame: pl.DataFrame, positions: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``frame`` that have a training position, sorted by it."""
    return frame.join(positions.select("example_id", "position"), on="example_id", how="inner").sort("position")


def reshuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``frame``'s rows in a seeded uniformly random order."""
    return frame[np.random.default_rng(seed).permutation(frame.height)]
