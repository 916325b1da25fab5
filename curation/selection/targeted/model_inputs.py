"""The model-side inputs of NN-CIFT and DEALRec that the library classes take as arrays: an influence oracle on a
sample (NN-CIFT) and per-example surrogate gradients with their effort norms (DEALRec).

- NN-CIFT's oracle: the cosine between a pool row's plain loss gradient and each target's, on the adapter's
  tracked modules of the current model (LESS's score without warm-up or preconditioner) [O: NN-CIFT distils the
  influence of whichever selection method it replaces]. Only a ``sample_fraction`` of the pool is labelled; the
  InfluenceNetwork predicts the rest from frozen text embeddings (pool and targets embedded together, one space).
- DEALRec's surrogate gradients: the same per-example gradients, randomly projected to ``dim`` (its influence
  solves a ``dim x dim`` system); the effort is the unprojected gradient norm.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.gradients.per_example import per_example_gradients
from curation.gradients.projection import ProjectionConfig, Projector
from curation.models.base import ModelAdapter
from curation.progress import progress_bar
from curation.selection.targeted.features import task_labels
from curation.selection.targeted.scores import TargetedScores, unit_rows

BATCH = 16  # examples per vmap batch of the oracle gradients


def loss_gradients(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *,
                   show_progress: bool = False, description: str = "gradients") -> torch.Tensor:
    """``[n, p]`` per-example loss gradients on the adapter's tracked modules."""
    modules = adapter.tracked_modules(model)
    chunks = []
    with progress_bar(total=-(-frame.height // BATCH), description=description, enabled=show_progress) as advance:
        for start in range(0, frame.height, BATCH):
            chunks.append(per_example_gradients(adapter, model, adapter.collate(frame[start:start + BATCH]),
                                                modules=modules).detach())
            advance(1)
    return torch.cat(chunks)


def nn_cift_scores(predictor: Any, adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame,
                   targets: pl.DataFrame, *, task_column: str = "task") -> tuple[TargetedScores, dict[str, float], np.ndarray]:
    """Label a seeded sample with the gradient-cosine oracle, fit ``predictor`` (an ``NNCIFTPredictor``) and predict
    the ``[n_pool, n_targets]`` influence of every pool row; returns the scores, the round's timings and the
    labelled rows."""
    from curation.selection.targeted.predictors import text_embeddings

    cfg = predictor.config
    tasks = task_labels(targets, task_column)
    t0 = time.perf_counter()
    emb = text_embeddings(pool["text"].to_list() + targets["text"].to_list(), dim=cfg.embedding_dim, seed=cfg.seed)
    pool_emb, target_emb = emb[: pool.height], emb[pool.height:]
    sample = np.sort(np.random.default_rng(cfg.seed).choice(
        pool.height, size=min(pool.height, max(5, round(cfg.sample_fraction * pool.height))), replace=False))
    t1 = time.perf_counter()
    g_pool = loss_gradients(adapter, model, pool[sample]).double().numpy()
    g_target = loss_gradients(adapter, model, targets).double().numpy()
    values = unit_rows(g_pool) @ unit_rows(g_target).T
    t2 = time.perf_counter()
    predicted = predictor.fit(pool_emb[sample], target_emb, values).predict(pool_emb, target_emb)
    predicted[sample] = values  # labelled rows keep their oracle values
    t3 = time.perf_counter()
    stats = {"embed_s": t1 - t0, "oracle_s": t2 - t1, "predictor_s": t3 - t2, "probed": float(len(sample)),
             "oracle_s_per_example": (t2 - t1) / len(sample)}
    return TargetedScores(predicted, tasks), stats, sample


def oracle_row_scores(method: str, predictor: Any, adapter: ModelAdapter, model: nn.Module, rows: pl.DataFrame,
                      targets: pl.DataFrame, *, task_column: str = "task") -> np.ndarray:
    """The oracle's per-row selection score (higher = more wanted) of ``rows``, in the predictor's convention:
    MATES minus the one-step-probe label, NN-CIFT the best task's mean gradient cosine. What a held-out check
    compares the predicted scores with."""
    if method == "mates":
        from curation.selection.targeted.predictors import one_step_probe_labels

        return -one_step_probe_labels(adapter, model, rows, targets, lr=predictor.config.probe_lr)
    g_rows = loss_gradients(adapter, model, rows).double().numpy()
    g_target = loss_gradients(adapter, model, targets).double().numpy()
    return TargetedScores(unit_rows(g_rows) @ unit_rows(g_target).T, task_labels(targets, task_column)).score()


def surrogate_gradients(adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame, *, dim: int, seed: int = 0,
                        show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(grads [n, dim], effort [n])``: projected per-example gradients and the unprojected gradient norms."""
    modules = adapter.tracked_modules(model)
    projector: Projector | None = None
    grads, effort = [], []
    with progress_bar(total=-(-pool.height // BATCH), description="DEALRec gradients",
                      enabled=show_progress) as advance:
        for start in range(0, pool.height, BATCH):
            g = per_example_gradients(adapter, model, adapter.collate(pool[start:start + BATCH]),
                                      modules=modules).detach()
            if projector is None:
                projector = Projector(g.shape[1], ProjectionConfig(kind="gaussian", dim=dim, seed=seed))
            grads.append(projector(g).double().numpy())
            effort.append(g.norm(dim=1).double().numpy())
            advance(1)
    return np.concatenate(grads), np.concatenate(effort)
