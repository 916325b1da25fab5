"""One mixture optimisation round: influence at a checkpoint → optimiser → next mixture (what the stage runs).

The prior is the mixture the checkpoint was trained on (``natural`` for an ordinary epoch-based run). Proxy labels
start from the checkpoint's weights, so candidate mixtures are compared as continuations of the same model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from torch import nn

from curation.errors import ConfigError
from curation.mixture.additivity import AdditivityResult, additivity_check
from curation.mixture.config import OptimizeMixtureConfig
from curation.mixture.group_influence import GroupInfluence, group_influence
from curation.mixture.labels import ProxyTrainingLabel, task_losses
from curation.mixture.mixture_file import read_mixture
from curation.mixture.optimizers import MixtureProblem
from curation.mixture.tikmix_d import MixtureSolution
from curation.models.base import ModelAdapter, load_adapter_model
from curation.models.references import resolve_checkpoint
from curation.plugins import get_plugin
from curation.training.mixture_sampling import natural_mixture

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixtureRound:
    """Everything one optimisation round produced."""

    domains: tuple[str, ...]
    prior: np.ndarray
    influence: GroupInfluence
    solution: MixtureSolution
    task_losses: dict[str, float]  # at the checkpoint, per validation task
    proxy_runs: int
    additivity: AdditivityResult | None = None  # None when the check is switched off (mixtures: 0)

    @property
    def weights(self) -> dict[str, float]:
        return dict(zip(self.domains, self.solution.weights.tolist(), strict=True))


def load_checkpoint_model(ref: str) -> tuple[ModelAdapter, nn.Module, Path]:
    """Adapter and model of a checkpoint reference."""
    path = resolve_checkpoint(ref)
    adapter, model, _ = load_adapter_model(path)
    return adapter, model, path


def prior_mixture(spec: str, train: pl.DataFrame, domains: list[str], domain_column: str) -> np.ndarray:
    """``natural`` (row shares), ``uniform`` or a mixture file, in ``domains`` order."""
    if spec == "uniform":
        return np.full(len(domains), 1.0 / len(domains))
    weights = natural_mixture(train, domain_column=domain_column) if spec == "natural" else read_mixture(spec)
    vector = np.array([weights.get(d, 0.0) for d in domains])
    if vector.sum() <= 0:
        raise ConfigError(f"prior {spec!r}: no weight on domains {domains}")
    return vector / vector.sum()


def optimize_mixture(adapter: ModelAdapter, model: nn.Module, train: pl.DataFrame, val: pl.DataFrame,
                     cfg: OptimizeMixtureConfig) -> MixtureRound:
    """Measure group influence at ``model``, check its additivity around the prior, run the configured optimiser."""
    gi = group_influence(adapter, model, train, val, cfg.influence)
    domains = list(gi.domains)
    prior = prior_mixture(cfg.prior, train, domains, cfg.influence.domain_column)
    additivity = None
    if cfg.additivity.mixtures:
        additivity = additivity_check(adapter, model, train, gi, prior, cfg.additivity,
                                      domain_column=cfg.influence.domain_column, batch_size=cfg.influence.batch_size)
        if not additivity.mean_pearson > 0.8:
            log.warning("additivity check: Pearson(measured, S·w) = %.3f < 0.8 — at %d tokens per domain the "
                        "influence of a mixture is dominated by sampling noise; raise influence.tokens_per_domain",
                        additivity.mean_pearson, cfg.influence.tokens_per_domain)
    losses = task_losses(adapter, model, val, cfg.influence.task_column, gi.tasks)
    labeler = None
    if cfg.label == "proxy" and cfg.optimizer != "tikmix_d":
        labeler = ProxyTrainingLabel(adapter, train, val, domains=domains, tasks=gi.tasks, cfg=cfg.proxy,
                                     domain_column=cfg.influence.domain_column, task_column=cfg.influence.task_column,
                                     init_state={k: v.detach().clone() for k, v in model.state_dict().items()})
    optimizer_cls = get_plugin("curation.mixture_optimizers", cfg.optimizer)
    builtin = cfg.optimizer in ("tikmix_d", "tikmix_m", "regmix")
    optimizer = optimizer_cls(getattr(cfg, cfg.optimizer)) if builtin else optimizer_cls()
    solution = optimizer.optimize(MixtureProblem(tuple(domains), prior, gi, labeler))
    return MixtureRound(tuple(domains), prior, gi, solution, losses, len(labeler.runs) if labeler else 0, additivity)
