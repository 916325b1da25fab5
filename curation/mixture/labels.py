"""Labels for candidate mixtures (higher = better): short proxy-training runs, or TiKMiX's influence objective.

``ProxyTrainingLabel`` realises a mixture as a short training run (RegMix-style): draw ``n_draws`` training rows by
the mixture's domain shares, train from a fixed start (a checkpoint's weights, or a fresh seeded model), and
return the negative mean of the per-task validation losses. ``InfluenceLabel`` scores a mixture with the fixed
group-influence matrix (the negated TiKMiX-D objective), which costs nothing but is only as good as ``S``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from torch import nn

from curation.mixture.group_influence import normalize_per_task
from curation.mixture.tikmix_d import TikmixDConfig, tikmix_objective
from curation.models.base import ModelAdapter
from curation.training.loop import TrainConfig, evaluate_loss, train
from curation.training.mixture_sampling import mixture_order


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """A short proxy-training run per candidate mixture."""

    draws: int = field(default=512, metadata={"help": "training rows drawn per proxy run (steps = draws / batch_size)"})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(schedule="constant", n_checkpoints=1, eval_every=10**9),
                               metadata={"help": "optimisation of each proxy run"})

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ValueError("draws must be >= 1")


def task_losses(adapter: ModelAdapter, model: nn.Module, val: pl.DataFrame, task_column: str,
                tasks: Sequence[str]) -> dict[str, float]:
    """Mean validation loss of each task."""
    out = {}
    for t in tasks:
        rows = val.filter(pl.col(task_column).cast(pl.Utf8) == t)
        out[t] = evaluate_loss(adapter, model, adapter.collate(rows))
    return out


class ProxyTrainingLabel:
    """``w -> −mean_i loss_i`` after a short training run on mixture ``w``; keeps a log of every run.

    Every run uses the same seed (start, draw order within domains), so label differences come from the mixture.
    """

    def __init__(self, adapter: ModelAdapter, train_frame: pl.DataFrame, val_frame: pl.DataFrame, *,
                 domains: Sequence[str], tasks: Sequence[str], cfg: ProxyConfig, domain_column: str = "domain",
                 task_column: str = "domain", init_state: dict | None = None) -> None:
        self.adapter, self.train_frame, self.val_frame = adapter, train_frame, val_frame
        self.domains, self.tasks, self.cfg = list(domains), list(tasks), cfg
        self.domain_column, self.task_column, self.init_state = domain_column, task_column, init_state
        self.runs: list[dict] = []

    @property
    def tokens_trained(self) -> int:
        """Rows drawn over all proxy runs so far (the labelling compute)."""
        return len(self.runs) * self.cfg.draws

    def __call__(self, w: np.ndarray) -> float:
        order = mixture_order(self.train_frame, dict(zip(self.domains, w, strict=True)), self.cfg.draws,
                              seed=self.cfg.train.seed, domain_column=self.domain_column)
        model = self.adapter.build_model()
        if self.init_state is not None:
            model.load_state_dict(copy.deepcopy(self.init_state))
        result = train(self.adapter, self.train_frame, self.cfg.train, model=model, order=order, show_progress=False)
        losses = task_losses(self.adapter, result.model, self.val_frame, self.task_column, self.tasks)
        self.runs.append({"weights": [float(x) for x in w], "losses": losses})
        return -float(np.mean(list(losses.values())))


class InfluenceLabel:
    """``w -> −L(w)``, the negated TiKMiX-D objective on a fixed influence matrix."""

    def __init__(self, matrix: np.ndarray, cfg: TikmixDConfig | None = None, *,
                 prior: np.ndarray | None = None) -> None:
        self.cfg = cfg or TikmixDConfig()
        baseline = None
        if self.cfg.normalization == "prior_gain":
            if prior is None:
                raise ValueError("InfluenceLabel with normalization=prior_gain needs the prior mixture")
            baseline = np.asarray(prior, dtype=np.float64) / np.sum(prior)
        self.s_hat = normalize_per_task(matrix, self.cfg.eps, baseline=baseline)

    def __call__(self, w: np.ndarray) -> float:
        return -tikmix_objective(np.asarray(w, dtype=np.float64), self.s_hat, self.cfg)
