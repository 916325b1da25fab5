"""LESS-style LoRA warm-up: train LoRA adapters with Adam on a random slice of the pool and keep, per epoch, the
LoRA weights, the Adam moments and the epoch's mean learning rate.

LESS scores with the optimizer state of the checkpoint it takes gradients at (its Adam-preconditioned update), so
the moments must be saved with the weights -- the project's ordinary training loop does not keep optimizer state,
hence this small loop. ``ensure_lora`` wraps any adapter's model: a model that already carries trainable ``lora_``
parameters (the HF adapter with ``lora_r > 0``) is used as is; otherwise ``peft`` injects LoRA into the modules
named in ``target_modules`` and freezes everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.errors import CurationError, MissingExtraError
from curation.models.base import ModelAdapter
from curation.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class WarmupConfig:
    """LoRA warm-up recipe (LESS defaults scaled down for CPU; the paper uses r=128, alpha=512, lr 2e-5, 4 epochs)."""

    fraction: float = field(default=0.05, metadata={"help": "random share of the pool used for warm-up"})
    epochs: int = field(default=4, metadata={"help": "warm-up epochs; one checkpoint (weights + Adam moments) each"})
    batch_size: int = field(default=8, metadata={"help": "examples per Adam step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (linear decay, 3% warm-up)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (when the model has no LoRA yet)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    target_modules: tuple[str, ...] = field(default=("qkv", "proj"), metadata={
        "help": "module-name suffixes LoRA wraps when the model has no LoRA yet (byte GPT: qkv, proj)"})
    seed: int = field(default=0, metadata={"help": "seed of the warm-up slice, LoRA init and data order"})

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1 or self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("fraction must lie in (0, 1]; epochs, batch_size and learning_rate must be positive")
        if self.lora_r < 1:
            raise ValueError("lora_r must be at least 1")


@dataclass
class WarmupCheckpoint:
    """LoRA weights and Adam moments (flattened in ``lora_names`` order) at the end of one epoch."""

    state: dict[str, torch.Tensor]
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    learning_rate: float


@dataclass
class Warmup:
    """The LoRA-wrapped model, its trainable parameter names and one checkpoint per epoch."""

    model: nn.Module
    lora_names: list[str]
    checkpoints: list[WarmupCheckpoint]
    warmup_rows: np.ndarray

    def load(self, index: int) -> None:
        """Put checkpoint ``index``'s LoRA weights into the model."""
        with torch.no_grad():
            params = dict(self.model.named_parameters())
            for name, value in self.checkpoints[index].state.items():
                params[name].copy_(value)

    @property
    def lora_modules(self) -> list[str]:
        """Module names owning the LoRA parameters (what per-example gradients are restricted to)."""
        return sorted({n.rsplit(".", 1)[0] for n in self.lora_names})

    @property
    def weights(self) -> np.ndarray:
        """Checkpoint weights: each epoch's mean learning rate, normalised to sum to 1 (LESS)."""
        lr = np.array([c.learning_rate for c in self.checkpoints], dtype=np.float64)
        return lr / lr.sum()


def ensure_lora(model: nn.Module, cfg: WarmupConfig) -> list[str]:
    """Names of the trainable LoRA parameters of ``model``, injecting LoRA with ``peft`` if there are none."""
    names = [n for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
    if names:
        return names
    try:
        import peft
    except ImportError:
        raise MissingExtraError("LoRA warm-up needs peft: pip install 'curation[hf]'") from None
    torch.manual_seed(cfg.seed)
    lora = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.target_modules),
                           lora_dropout=0.0)
    try:
        peft.inject_adapter_in_model(lora, model)
    except ValueError as exc:
        raise CurationError(f"LoRA warm-up: target_modules {list(cfg.target_modules)} match no module "
                            f"({str(exc).splitlines()[0]})") from None
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _lr(cfg: WarmupConfig, step: int, total: int) -> float:
    """Linear warm-up over the first 3% of steps, then linear decay to zero (LESS's schedule)."""
    warm = max(1, round(0.03 * total))
    if step < warm:
        return cfg.learning_rate * (step + 1) / warm
    return cfg.learning_rate * max(0.0, (total - step) / max(1, total - warm))


def warmup_lora(adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame, cfg: WarmupConfig,
                *, show_progress: bool = False) -> Warmup:
    """LoRA-train ``model`` (in place) on a random ``cfg.fraction`` of ``pool`` with Adam; one checkpoint per epoch."""
    names = ensure_lora(model, cfg)
    params = dict(model.named_parameters())
    trainable = [params[n] for n in names]
    rng = np.random.default_rng(cfg.seed)
    rows = np.sort(rng.choice(pool.height, size=max(1, math.ceil(cfg.fraction * pool.height)), replace=False))
    per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = per_epoch * cfg.epochs
    opt = torch.optim.Adam(trainable, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    checkpoints: list[WarmupCheckpoint] = []
    step = 0
    model.train()
    with progress_bar(total=total, description="LoRA warm-up", enabled=show_progress) as advance:
        for _ in range(cfg.epochs):
            order = rows[rng.permutation(len(rows))]
            lrs = []
            for b in range(per_epoch):
                batch = adapter.collate(pool[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]])
                lr = _lr(cfg, step, total)
                for group in opt.param_groups:
                    group["lr"] = lr
                loss = adapter.example_losses(model, batch).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lrs.append(lr)
                step += 1
                advance(1)
            state = [opt.state[p] for p in trainable]
            checkpoints.append(WarmupCheckpoint(
                state={n: params[n].detach().clone() for n in names},
                exp_avg=torch.cat([s["exp_avg"].reshape(-1) for s in state]).clone(),
                exp_avg_sq=torch.cat([s["exp_avg_sq"].reshape(-1) for s in state]).clone(),
                learning_rate=float(np.mean(lrs)),
            ))
    model.eval()
    return Warmup(model=model, lora_names=names, checkpoints=checkpoints, warmup_rows=rows)
