"""A small, deterministic training loop over any ``ModelAdapter``.

It records what influence and provenance methods need and ordinary loops forget: every example's training
``position`` (the order in which the run consumed it), checkpoints at evenly spaced steps saved as safetensors
with the learning rate in force, and a loss curve (train and validation) for the report and ``dvc plots``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.io import write_parquet
from curation.models.base import ModelAdapter, adapter_model_config
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings."""

    epochs: float = field(default=1.0, metadata={"help": "passes over the training table (fractions allowed)"})
    batch_size: int = field(default=32, metadata={"help": "examples per step"})
    optimizer: Literal["sgd", "adamw"] = field(default="adamw", metadata={"help": "sgd (with momentum) or adamw"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 / decoupled weight decay"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    schedule: Literal["constant", "cosine"] = field(default="cosine", metadata={"help": "learning-rate schedule"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    n_checkpoints: int = field(default=5, metadata={"help": "evenly spaced checkpoints to save (last = final)"})
    eval_every: int = field(default=50, metadata={"help": "steps between validation-loss evaluations"})
    seed: int = field(default=0, metadata={"help": "seed for initialisation and data order"})
    gradient_restriction: float = field(
        default=0.0,
        metadata={"help": "IAU gradient restriction alpha: adds alpha * sum of per-tensor gradient L2 norms to the "
                          "loss (double backprop, ~2-3x cost); 0 = off, the IAU paper uses 0.005"},
    )
    record_examples: bool = field(
        default=False,
        metadata={"help": "record every presentation's per-example loss and (classifiers) correctness; written as "
                          "example_records.parquet beside the checkpoints (forgetting events, curation.selection."
                          "difficulty)"},
    )

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")
        if self.n_checkpoints < 1:
            raise ValueError("n_checkpoints must be at least 1")
        if self.gradient_restriction < 0:
            raise ValueError("gradient_restriction must be >= 0")


@dataclass
class TrainResult:
    """What a training run produced."""

    model: nn.Module
    checkpoints: list[dict]  # file (name inside checkpoint_dir), step, learning_rate
    positions: pl.DataFrame  # example_id, position (index of its last exposure in the run), epoch
    curve: pl.DataFrame  # step, train_loss (mean since the previous evaluation), val_loss
    records: pl.DataFrame | None = None  # with record_examples: example_id, step, epoch, loss, correct


def learning_rate_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate used for optimiser step ``step`` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.learning_rate
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_order(n: int, cfg: TrainConfig) -> np.ndarray:
    """Row indices in the order training consumes them: one fresh permutation per epoch, seeded."""
    rng = np.random.default_rng(cfg.seed)
    total = round(cfg.epochs * n)
    order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(cfg.epochs))])
    return order[:total]


def train(
    adapter: ModelAdapter,
    train_frame: pl.DataFrame,
    cfg: TrainConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    val_frame: pl.DataFrame | None = None,
    model: nn.Module | None = None,
    show_progress: bool = True,
    order: np.ndarray | None = None,
) -> TrainResult:
    """Train ``model`` (or a fresh seeded one) on ``train_frame`` in a recorded order.

    ``order`` (row indices, e.g. from ``curation.training.mixture_sampling.mixture_order``) replaces the default
    seeded epoch permutations; its length then sets the number of steps and ``cfg.epochs`` is not used.
    """
    torch.manual_seed(cfg.seed)
    model = model if model is not None else adapter.build_model()
    n = train_frame.height
    if order is None:
        order = training_order(n, cfg)
    elif len(order) == 0 or int(np.min(order)) < 0 or int(np.max(order)) >= n:
        raise ValueError(f"order must be a non-empty array of row indices in [0, {n})")
    steps = math.ceil(len(order) / cfg.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    ckpt_steps = sorted({max(1, round(steps * (i + 1) / cfg.n_checkpoints)) for i in range(cfg.n_checkpoints)})
    val_batch = adapter.collate(val_frame) if val_frame is not None and val_frame.height else None
    checkpoints: list[dict] = []
    curve: list[dict] = []
    window: list[float] = []
    records: list[dict] = []
    model.train()
    with progress_bar(total=steps, description="training", enabled=show_progress) as advance:
        for step in range(steps):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            batch = adapter.collate(train_frame[idx])
            lr = learning_rate_at(cfg, step, steps)
            for group in opt.param_groups:
                group["lr"] = lr
            losses = adapter.example_losses(model, batch)
            if cfg.record_examples:
                records.append(presentation_record(adapter, model, batch, losses, idx, step))
            loss = restricted_loss(losses.mean(), params, cfg.gradient_restriction)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done = step + 1
            window.append(loss.item())
            if done % cfg.eval_every == 0 or done == steps:
                val = evaluate_loss(adapter, model, val_batch) if val_batch is not None else None
                curve.append({"step": done, "train_loss": sum(window) / len(window), "val_loss": val})
                window.clear()
                model.train()
            if checkpoint_dir is not None and done in ckpt_steps:
                path = Path(checkpoint_dir) / f"ckpt-{done:06d}.safetensors"
                info = CheckpointInfo(
                    adapter=adapter.name, model_config=adapter_model_config(adapter), step=done, learning_rate=lr
                )
                save_checkpoint(path, model.state_dict(), info)
                checkpoints.append({"file": path.name, "step": done, "learning_rate": lr})
            advance(1)
    model.eval()
    ids = train_frame["example_id"]
    last = {}  # the most recent exposure: what palimpsestic provenance tests correlate with
    for pos, row_idx in enumerate(order.tolist()):
        last[row_idx] = pos
    positions = pl.DataFrame(
        {
            "example_id": ids.gather(list(last.keys())),
            "position": list(last.values()),
            "epoch": [p // n for p in last.values()],
        }
    ).sort("position")
    schema = {"step": pl.Int64, "train_loss": pl.Float64, "val_loss": pl.Float64}
    record_frame = example_records(ids, records, n) if cfg.record_examples else None
    if record_frame is not None and checkpoint_dir is not None:
        write_parquet(record_frame, Path(checkpoint_dir) / RECORDS_FILE)
    return TrainResult(model, checkpoints, positions, pl.DataFrame(curve, schema=schema), record_frame)


RECORDS_FILE = "example_records.parquet"


@torch.no_grad()
def presentation_record(
    adapter: ModelAdapter, model: nn.Module, batch: dict, losses: torch.Tensor, idx: np.ndarray, step: int
) -> dict:
    """One step's presentations: row index, loss before the update and, for classifiers, whether the model's
    prediction (argmax of ``adapter.logits``, same training-mode forward) equals the label."""
    correct = None
    if adapter.kind == "classifier" and "y" in batch:
        correct = (adapter.logits(model, batch).argmax(-1) == batch["y"]).tolist()
    return {"rows": idx.tolist(), "step": step + 1, "loss": losses.detach().double().tolist(), "correct": correct}


def example_records(ids: pl.Series, records: list[dict], n: int) -> pl.DataFrame:
    """Per-presentation frame ``example_id, step, epoch, loss, correct`` (``correct`` null for non-classifiers);
    ``epoch`` = presentation position // ``n`` (the table's rows)."""
    rows, steps, losses, correct = [], [], [], []
    for rec in records:
        rows += rec["rows"]
        steps += [rec["step"]] * len(rec["rows"])
        losses += rec["loss"]
        correct += rec["correct"] if rec["correct"] is not None else [None] * len(rec["rows"])
    position = np.arange(len(rows))
    return pl.DataFrame(
        {"example_id": ids.gather(rows) if rows else ids.head(0), "step": steps, "epoch": (position // n).tolist(),
         "loss": losses, "correct": correct},
        schema_overrides={"step": pl.Int64, "epoch": pl.Int64, "loss": pl.Float64, "correct": pl.Boolean},
    )


def restricted_loss(loss: torch.Tensor, params: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """IAU gradient restriction: ``loss + alpha * sum_P ||dloss/dP||_2`` over parameter tensors ``P``.

    Keeping gradients small and regular during training makes IAU's single-step unlearning update accurate; the
    penalty is differentiated through (``create_graph``), so it costs a second backward pass.
    """
    if alpha <= 0:
        return loss
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return loss + alpha * sum(g.norm() for g in grads)


@torch.no_grad()
def evaluate_loss(adapter: ModelAdapter, model: nn.Module, batch: dict, chunk: int = 256) -> float:
    """Mean per-example loss over a collated batch, in chunks to bound memory."""
    model.eval()
    n = next(iter(batch.values())).shape[0]
    losses = [
        adapter.example_losses(model, {k: v[i : i + chunk] for k, v in batch.items()}) for i in range(0, n, chunk)
    ]
    return float(torch.cat(losses).mean())
