"""End-to-end helpers shared by the influence stages and the ``curate influence`` / ``curate label-errors``
commands: load a run's checkpoints, build a scoring context from tables, and save a scorer's outputs.

Outputs of one scoring run (``save_scores``): ``matrix.npy`` (float32 ``[n_train, n_query]``, rows in training
table order, columns in query order; never a polars frame), ``top_k.parquet`` (``example_id, score, query_id,
rank``) and ``self_influence.parquet`` (``example_id, score``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from curation.attribution.base import CheckpointModel, ScoreResult
from curation.errors import CurationError
from curation.io import atomic_path, write_parquet
from curation.models.base import ModelAdapter
from curation.models.references import PlainCheckpoints, load_models


def load_checkpoints(
    source: str | os.PathLike[str], *, last: int | None = None, plain: PlainCheckpoints | None = None
) -> tuple[ModelAdapter, tuple[CheckpointModel, ...]]:
    """Adapter and checkpoints (training order, with learning rates) behind any model reference that
    ``curation.models.references`` resolves; ``plain`` describes a user's own state dicts.

    ``last`` keeps only the last N checkpoints (TracIn over late checkpoints; a single final model for TRAK-1).
    """
    adapter, loaded = load_models(source, last=last, plain=plain)
    checkpoints = []
    for path, model, lr in loaded:
        if not np.isfinite(lr):
            raise CurationError(f"{path}: checkpoint has no learning rate in its metadata (TracIn weights by it)")
        checkpoints.append(CheckpointModel(model=model, learning_rate=lr))
    return adapter, tuple(checkpoints)


def save_scores(result: ScoreResult, out_dir: str | os.PathLike[str], *, top_k: int) -> dict[str, Path]:
    """Write ``matrix.npy``, ``top_k.parquet`` and ``self_influence.parquet`` under ``out_dir``.

    Everything is built and checked in memory first (no infinite score; NaN in the matrix means "not scored"),
    so a run that fails leaves the outputs of the previous run as they were; each file is replaced atomically.
    """
    matrix = np.asarray(result.matrix, dtype=np.float32)
    bad = np.argwhere(np.isinf(matrix))
    if bad.size:
        raise CurationError(f"scores: training row {bad[0][0]} x query {bad[0][1]} is infinite; nothing written")
    bad_self = np.flatnonzero(~np.isfinite(np.asarray(result.self_influence, dtype=np.float64)))
    if bad_self.size:
        raise CurationError(f"self-influence: training row {bad_self[0]} is not finite; nothing written")
    top, self_frame = result.scores(top_k=top_k), result.self_influence_frame()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"matrix": out_dir / "matrix.npy", "top_k": out_dir / "top_k.parquet",
             "self_influence": out_dir / "self_influence.parquet"}
    with atomic_path(paths["matrix"]) as tmp, open(tmp, "wb") as fh:
        np.save(fh, matrix)
    write_parquet(top, paths["top_k"])
    write_parquet(self_frame, paths["self_influence"])
    return paths


def sample_rows(frame: pl.DataFrame, n: int, *, seed: int, by: str | None = None) -> pl.DataFrame:
    """At most ``n`` rows (all when ``n <= 0``), seeded; stratified evenly over ``by`` when that column exists."""
    if n <= 0 or frame.height <= n:
        return frame
    if by and by in frame.columns:
        groups = frame.partition_by(by, maintain_order=True)
        per = max(1, n // len(groups))
        parts = [g.sample(min(per, g.height), seed=seed) for g in groups]
        return pl.concat(parts).head(n)
    return frame.sample(n, seed=seed)
