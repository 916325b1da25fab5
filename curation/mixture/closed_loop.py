"""Train on a domain mixture, optionally re-estimating it with TiKMiX-D every N steps (the dynamic schedule).

Without re-estimation this is one ordinary run whose training order is drawn by the mixture. With
``reestimate_every = N`` the run is cut into segments of N steps; before each later segment group influence is
measured at the current weights and TiKMiX-D (prior = the mixture in force) gives the next segment's mixture. Each
segment restarts the optimiser and its learning-rate schedule (as at a TiKMiX stage boundary), so use a
``constant`` schedule when segments are short. Checkpoints are then saved at segment ends, named by global step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from torch import nn

from curation.mixture.group_influence import GroupInfluenceConfig, group_influence
from curation.mixture.tikmix_d import TikmixDConfig, tikmix_d
from curation.models.base import ModelAdapter, adapter_model_config
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.training.loop import TrainConfig, TrainResult, learning_rate_at, train
from curation.training.mixture_sampling import mixture_order

log = logging.getLogger(__name__)

Reestimator = Callable[[nn.Module, dict[str, float]], dict[str, float]]


@dataclass
class MixtureRun:
    """A mixture-sampled training run and the mixture in force from each step on."""

    result: TrainResult
    mixtures: list[dict]  # {"step": first step of the segment, "weights": {domain: weight}}


def tikmix_reestimator(adapter: ModelAdapter, train_frame: pl.DataFrame, val_frame: pl.DataFrame,
                       influence: GroupInfluenceConfig, objective: TikmixDConfig) -> Reestimator:
    """``(model, current mixture) -> next mixture`` by group influence at ``model`` and TiKMiX-D."""

    def reestimate(model: nn.Module, current: dict[str, float]) -> dict[str, float]:
        domains = sorted(current)
        gi = group_influence(adapter, model, train_frame, val_frame, influence, domains=domains)
        sol = tikmix_d(gi.matrix, [current[d] for d in domains], objective, tasks=gi.tasks)
        model.train()
        return dict(zip(domains, sol.weights.tolist(), strict=True))

    return reestimate


def train_on_mixture(
    adapter: ModelAdapter,
    train_frame: pl.DataFrame,
    weights: dict[str, float],
    cfg: TrainConfig,
    *,
    model: nn.Module | None = None,
    val_frame: pl.DataFrame | None = None,
    checkpoint_dir: str | Path | None = None,
    reestimate_every: int = 0,
    reestimate: Reestimator | None = None,
    domain_column: str = "domain",
) -> MixtureRun:
    """Train for ``cfg.epochs × rows`` draws sampled by ``weights`` (re-estimated every N steps if asked)."""
    draws = max(1, round(cfg.epochs * train_frame.height))
    total_steps = -(-draws // cfg.batch_size)
    if not reestimate_every or reestimate is None or reestimate_every >= total_steps:
        order = mixture_order(train_frame, weights, draws, seed=cfg.seed, domain_column=domain_column)
        result = train(adapter, train_frame, cfg, model=model, order=order, val_frame=val_frame,
                       checkpoint_dir=checkpoint_dir)
        return MixtureRun(result, [{"step": 0, "weights": dict(weights)}])
    model = model if model is not None else adapter.build_model()
    mixtures, curves, positions, checkpoints = [], [], [], []
    done = 0
    for k, start in enumerate(range(0, total_steps, reestimate_every)):
        if k:
            weights = reestimate(model, weights)
            log.info("step %d: re-estimated mixture %s", start, {d: round(w, 3) for d, w in weights.items()})
        mixtures.append({"step": start, "weights": dict(weights)})
        seg_draws = min(reestimate_every * cfg.batch_size, draws - done)
        order = mixture_order(train_frame, weights, seg_draws, seed=cfg.seed + k, domain_column=domain_column)
        seg = train(adapter, train_frame, cfg, model=model, order=order, val_frame=val_frame)
        model = seg.model
        curves.append(seg.curve.with_columns(pl.col("step") + start))
        positions.append(seg.positions.with_columns(pl.col("position") + done))
        done += seg_draws
        step = start + -(-seg_draws // cfg.batch_size)
        if checkpoint_dir is not None:
            seg_steps = -(-seg_draws // cfg.batch_size)
            lr = learning_rate_at(cfg, seg_steps - 1, seg_steps)
            path = Path(checkpoint_dir) / f"ckpt-{step:06d}.safetensors"
            info = CheckpointInfo(adapter=adapter.name, model_config=adapter_model_config(adapter), step=step,
                                  learning_rate=lr)
            save_checkpoint(path, model.state_dict(), info)
            checkpoints.append({"file": path.name, "step": step, "learning_rate": lr})
    pos = pl.concat(positions).sort("position").unique("example_id", keep="first", maintain_order=True)
    pos = pos.with_columns((pl.col("position") // train_frame.height).alias("epoch"))
    result = TrainResult(model, checkpoints, pos, pl.concat(curves))
    return MixtureRun(result, mixtures)


def mixture_vector(weights: dict[str, float], domains: list[str]) -> np.ndarray:
    """Weights in ``domains`` order (missing domains = 0)."""
    return np.array([float(weights.get(d, 0.0)) for d in domains])
