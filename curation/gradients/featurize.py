"""Compute projected per-example gradient features of a table into a ``GradientStore``, shard by shard.

The unit of work is a shard (a fixed slice of table rows); ``featurize_shard`` is a pure function of the model,
the rows and the projector, so an executor may run shards anywhere. ``featurize`` runs the shards that the store
still lists as pending for each checkpoint, in order; an interrupted run therefore resumes where it stopped and,
because shard boundaries and micro-batches depend only on the configuration, writes exactly the same bytes.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.config import to_dict
from curation.errors import CurationError
from curation.executors import ExecutorConfig, map_shards
from curation.gradients.coordinate_grads import linear_gradient_blocks
from curation.gradients.ghost import ghost_applicable
from curation.gradients.kronecker import KroneckerProjector
from curation.gradients.per_example import per_example_gradients, tracked_parameters
from curation.gradients.projection import ProjectionConfig, Projector
from curation.gradients.store import GradientStore
from curation.models.base import Batch, ModelAdapter, adapter_model_config, require_kind
from curation.progress import progress_bar

Target = Literal["loss", "measurement", "margin"]


@dataclass(frozen=True, kw_only=True)
class FeaturizeConfig:
    """Which gradients to compute and how to cut the work."""

    target: Target = field(default="loss", metadata={"help": "loss | measurement | margin (classifiers; TRAK)"})
    modules: tuple[str, ...] = field(default=(), metadata={"help": "tracked module names; empty = adapter default"})
    projection: ProjectionConfig = field(default_factory=ProjectionConfig, metadata={"help": "random projection"})
    shard_size: int = field(default=256, metadata={"help": "rows per shard (unit of resumption)"})
    batch_size: int = field(default=32, metadata={"help": "examples per vmap micro-batch inside a shard"})

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be positive")


def margin(adapter: ModelAdapter, model: nn.Module, batch: Batch) -> torch.Tensor:
    """TRAK's classification output ``logit_y - logsumexp_{j != y} logit_j`` (= log p/(1-p)), per example."""
    require_kind(adapter, "classifier", what="target 'margin'")
    if "y" not in batch:
        raise CurationError(f"target 'margin' needs labelled rows (adapter '{adapter.name}')")
    logits = adapter.logits(model, batch)
    true = logits.gather(-1, batch["y"].unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, batch["y"].unsqueeze(-1), float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def output_function(adapter: ModelAdapter, target: Target) -> Callable[[nn.Module, Batch], torch.Tensor]:
    """The per-example scalar whose gradient is featurised."""
    if target == "loss":
        return adapter.example_losses
    if target == "measurement":
        return adapter.measurement
    if target == "margin":
        return lambda model, batch: margin(adapter, model, batch)
    raise ValueError(f"unknown target {target!r}")


def frame_digest(frame: pl.DataFrame) -> str:
    """Order-sensitive digest of a table's rows (guards a store against a changed input table)."""
    h = hashlib.sha256(str(frame.schema).encode())
    h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


def state_digest(model: nn.Module) -> str:
    """Digest of a model's parameters and buffers."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def tracked_modules(adapter: ModelAdapter, model: nn.Module, cfg: FeaturizeConfig) -> list[str]:
    return list(cfg.modules) if cfg.modules else adapter.tracked_modules(model)


def n_tracked(adapter: ModelAdapter, model: nn.Module, cfg: FeaturizeConfig) -> int:
    """Number of gradient coordinates before projection."""
    return sum(p.numel() for p in tracked_parameters(model, tracked_modules(adapter, model, cfg)).values())


def make_projector(adapter: ModelAdapter, model: nn.Module, cfg: FeaturizeConfig) -> Projector | KroneckerProjector:
    """The projector of ``cfg.projection`` for this model's tracked modules (kronecker: Linear modules only)."""
    if cfg.projection.kind == "kronecker":
        return KroneckerProjector(model, tracked_modules(adapter, model, cfg), cfg.projection)
    return Projector(n_tracked(adapter, model, cfg), cfg.projection)


def _linear_blocks(model: nn.Module, batch: Batch, fn: Callable[[nn.Module, Batch], torch.Tensor],
                   modules: list[str]) -> tuple | None:
    """Coordinate-major gradient blocks from layer hooks, or ``None`` when hooks cannot give them (a tracked Linear
    called more than once per forward, e.g. shared weights): the ``torch.func`` path then handles the batch."""
    try:
        return linear_gradient_blocks(model, batch, fn, modules)
    except CurationError:
        return None


def featurize_shard(
    adapter: ModelAdapter,
    model: nn.Module,
    rows: pl.DataFrame,
    projector: Projector | KroneckerProjector,
    cfg: FeaturizeConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected gradients ``[len(rows), k]`` and output values ``[len(rows)]`` of one shard.

    A ``KroneckerProjector`` works from layer activations and output gradients of batched passes (no per-example
    gradient is built); ``sjlt`` over Linear modules only projects coordinate-major gradients built from one batched
    pass (``curation.gradients.coordinate_grads``); any other projector projects the ``torch.func`` per-example
    gradients.
    """
    fn = output_function(adapter, cfg.target)
    modules = tracked_modules(adapter, model, cfg)
    fast = not isinstance(projector, KroneckerProjector) and projector.config.kind == "sjlt" \
        and ghost_applicable(model, modules)
    grads, values = [], []
    for start in range(0, rows.height, cfg.batch_size):
        batch = adapter.collate(rows.slice(start, cfg.batch_size))
        if isinstance(projector, KroneckerProjector):
            feats, vals = projector.features(model, batch, fn)
        elif fast and (found := _linear_blocks(model, batch, fn, modules)) is not None:
            feats = projector.project_blocks(found[0], len(found[1]), wide=found[1].dtype == torch.float64)
            vals = found[1]
        else:
            feats = projector(per_example_gradients(adapter, model, batch, modules=modules, target=fn).detach())
            with torch.no_grad():
                vals = fn(model, batch).detach()
        grads.append(feats.float().numpy())
        values.append(vals.float().numpy())
    return np.concatenate(grads), np.concatenate(values)


def store_metadata(
    adapter: ModelAdapter, frame: pl.DataFrame, checkpoints: Mapping[str, nn.Module], cfg: FeaturizeConfig
) -> dict:
    """Everything the stored features depend on; reopening a store with any difference is refused."""
    first = next(iter(checkpoints.values()))
    return {
        "adapter": adapter.name,
        "model_config": adapter_model_config(adapter),
        "modules": tracked_modules(adapter, first, cfg),
        "target": cfg.target,
        "projection": to_dict(cfg.projection),
        "shard_size": cfg.shard_size,
        "batch_size": cfg.batch_size,
        "data_digest": frame_digest(frame),
        "checkpoints": {cid: state_digest(m) for cid, m in checkpoints.items()},
    }


def open_store(
    root: str, adapter: ModelAdapter, frame: pl.DataFrame, checkpoints: Mapping[str, nn.Module], cfg: FeaturizeConfig
) -> tuple[GradientStore, Projector | KroneckerProjector]:
    """The store for these inputs (created or verified) and the projector its features use."""
    first = next(iter(checkpoints.values()))
    projector = make_projector(adapter, first, cfg)
    store = GradientStore(
        root, store_metadata(adapter, frame, checkpoints, cfg), n_rows=frame.height, dim=projector.dim
    )
    return store, projector


def featurize(
    adapter: ModelAdapter,
    checkpoints: Mapping[str, nn.Module],
    frame: pl.DataFrame,
    root: str,
    cfg: FeaturizeConfig,
    *,
    show_progress: bool = True,
    executor: ExecutorConfig | None = None,
) -> GradientStore:
    """Fill the store at ``root`` with features of every checkpoint; already-done shards are skipped.

    ``executor`` decides where shards run (this process by default, or Ray tasks); the features agree up to float
    rounding (a worker's torch thread count can change the order of sums)."""
    if not checkpoints:
        raise CurationError("featurize needs at least one checkpoint")
    store, projector = open_store(root, adapter, frame, checkpoints, cfg)
    todo = _pending_shards(store, checkpoints, frame.height, cfg.shard_size)
    shared = {"adapter": adapter, "checkpoints": dict(checkpoints), "frame": frame, "projector": projector, "cfg": cfg}
    with progress_bar(total=len(todo), description=f"gradients ({cfg.target})", enabled=show_progress) as advance:
        for index, (grads, values) in map_shards(_pending_shard, todo, shared=shared, config=executor):
            cid, start = todo[index]
            store.write(cid, start, grads, values)  # each shard is recorded as soon as it is back: resumable
            advance(1)
    return store


def _pending_shard(
    item: tuple[str, int],
    *,
    adapter: ModelAdapter,
    checkpoints: Mapping[str, nn.Module],
    frame: pl.DataFrame,
    projector: Projector | KroneckerProjector,
    cfg: FeaturizeConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """``featurize_shard`` of shard ``(checkpoint id, first row)``: the unit an executor runs anywhere."""
    cid, start = item
    return featurize_shard(adapter, checkpoints[cid], frame.slice(start, cfg.shard_size), projector, cfg)


def _pending_shards(
    store: GradientStore, checkpoints: Sequence[str] | Mapping[str, nn.Module], n_rows: int, shard_size: int
) -> list[tuple[str, int]]:
    todo = []
    for cid in checkpoints:
        done = store.done_mask(cid)
        todo += [(cid, s) for s in range(0, n_rows, shard_size) if not done[s : s + shard_size].all()]
    return todo


def checkpoint_features(
    adapter: ModelAdapter,
    models: Sequence[nn.Module],
    frame: pl.DataFrame,
    cfg: FeaturizeConfig,
    *,
    store_dir: str | None = None,
    show_progress: bool = True,
    executor: ExecutorConfig | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(grads [n, k], values [n])`` per model, computed through a store (resumable) or a temporary one.

    Models are identified by their position (``"0"``, ``"1"``, ...); the store's guard also records each
    model's parameter digest, so a store filled from other checkpoints is refused rather than reused.
    """
    checkpoints = {str(i): m for i, m in enumerate(models)}
    with tempfile.TemporaryDirectory(prefix="curation-grads-") as tmp:
        store = featurize(adapter, checkpoints, frame, store_dir or tmp, cfg, show_progress=show_progress,
                          executor=executor)
        return [(np.array(store.grads(c)), np.array(store.values(c))) for c in checkpoints]


def store_folder(root: str, split: str, target: str, frame: pl.DataFrame) -> str:
    """Store path of one table's features: ``<root>/<split>-<target>-<digest of the rows>``, so several tables
    (query sets, training samples) share one root and a changed table never collides with an old store."""
    return f"{root}/{split}-{target}-{frame_digest(frame)[:10]}"
