"""Training-dynamics difficulty scores (methods spec §14): VoG, EL2N, GraNd and forgetting events.

Each scorer returns the ``hard`` issue table of the output contract (``hard_score``: higher = harder, more atypical
or more likely mislabelled; the top ``flag_fraction`` flagged), its summary and the Selector's input ``scores``
(``example_id, score``, higher = more wanted). Which end is wanted is the config's ``prefer``: ``hard`` (data
pruning: EL2N/GraNd papers drop the easiest) or ``easy`` (cleaning: the hardest concentrate label noise).

They are registered in ``curation.selection_scorers`` and share its call ``score(pool, target)`` (the target is
not used: difficulty is a property of the pool under a model); the models come from ``checkpoints`` (paths of
self-describing checkpoints, ``curation.models.checkpoints``) or are passed in (``adapter=``, ``models=``), and
forgetting events read ``records`` (``example_records.parquet`` of a run) or ``records=``.

- **VoG** (Agarwal et al. 2022): over ``K`` checkpoints, the gradient of the true-class logit with respect to the
  input, ``S_k``; ``VoG = mean_features sqrt(mean_k (S_k - S̄)²)``, then z-normalised within each class.
  Classifier adapters only.
- **EL2N** (Paul et al. 2021): ``E_models ||softmax(f(x)) - onehot(y)||₂`` over models early in training
  (several seeds or checkpoints). Classifier adapters only.
- **GraNd** (Paul et al. 2021): ``E_models ||∇θ ℓ(x, y)||₂`` over the adapter's tracked modules; any adapter
  (exact per-example norms by ``curation.gradients.ghost`` when those modules are ``nn.Linear``).
- **Forgetting events** (Toneva et al. 2019): from the per-presentation records that ``curation.training.loop``
  writes with ``record_examples``: the number of correct -> incorrect transitions of an example over its
  presentations; an example never classified correctly scores its number of presentations, more than any
  learned example can reach (``floor(p / 2)`` events in ``p`` presentations), as the paper ranks it last.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.errors import DataContractError
from curation.gradients.ghost import ghost_applicable, ghost_squared_norms
from curation.issue_tables import dataset_summary, issue_table
from curation.models.base import ModelAdapter, load_adapter_model, require_kind

ISSUE = "hard"


@dataclass(frozen=True, kw_only=True)
class DifficultyConfig:
    """Where the models come from, which end a selector keeps, and how many of the hardest examples to flag."""

    checkpoints: tuple[str, ...] = field(
        default=(), metadata={"help": "checkpoint files (e.g. early checkpoints of several seeds) scored with; "
                                      "empty = models passed in by the caller"})
    prefer: Literal["hard", "easy"] = field(
        default="hard", metadata={"help": "what a selector keeps: hard (pruning) or easy (cleaning)"})
    flag_fraction: float = field(default=0.1, metadata={"help": "top share of examples by difficulty flagged"})
    batch_size: int = field(default=256, metadata={"help": "rows per forward/backward batch"})

    def __post_init__(self) -> None:
        if not 0 <= self.flag_fraction <= 1 or self.batch_size < 1:
            raise ValueError("flag_fraction must lie in [0, 1] and batch_size be >= 1")


@dataclass(frozen=True, kw_only=True)
class VoGConfig(DifficultyConfig):
    """VoG settings."""

    class_normalize: bool = field(default=True, metadata={"help": "z-normalise VoG within each (given) class"})


@dataclass(frozen=True)
class DifficultyScores:
    """The Selector's input (``example_id, score``; higher = more wanted), the ``hard`` issue table, its summary."""

    scores: pl.DataFrame
    issues: pl.DataFrame
    summary: pl.DataFrame


def _models(method: str, config: DifficultyConfig, adapter: ModelAdapter | None,
            models: Sequence[nn.Module] | None) -> tuple[ModelAdapter, list[nn.Module]]:
    """The caller's adapter and models, or those of ``config.checkpoints``."""
    if models is not None:
        if adapter is None or not models:
            raise DataContractError(f"{method}: pass an adapter and at least one model")
        return adapter, list(models)
    if not config.checkpoints:
        raise DataContractError(f"{method}: no models: set options.checkpoints to checkpoint files")
    loaded = [load_adapter_model(path) for path in config.checkpoints]
    return adapter or loaded[0][0], [model for _, model, _ in loaded]


def _wrap(frame: pl.DataFrame, scores: np.ndarray, method: str, config: DifficultyConfig, started: float,
          extras: dict[str, Sequence[Any]] | None = None, **figures: Any) -> DifficultyScores:
    if "example_id" not in frame.columns:
        raise DataContractError(f"{method}: table has no 'example_id' column")
    ids = frame["example_id"].to_list()
    table = issue_table(ids, scores, issue=ISSUE, fraction=config.flag_fraction, extras=extras)
    wanted = pl.DataFrame({"example_id": ids, "score": scores if config.prefer == "hard" else -scores})
    return DifficultyScores(wanted, table, dataset_summary(table, issue=ISSUE, method=method, prefer=config.prefer,
                                                           seconds=time.perf_counter() - started, **figures))


def _batches(adapter: ModelAdapter, frame: pl.DataFrame, size: int) -> Iterator[tuple[int, dict]]:
    for start in range(0, frame.height, size):
        yield start, adapter.collate(frame[start : start + size])


def _labels(batch: dict, method: str) -> torch.Tensor:
    if "y" not in batch:
        raise DataContractError(f"{method}: the table has no 'label' column")
    return batch["y"]


class VoGScorer:
    """Registered as ``vog``: variance of the true-class logit's input gradient across checkpoints."""

    name: ClassVar[str] = "vog"
    config_cls: ClassVar[type] = VoGConfig

    def __init__(self, config: VoGConfig | None = None) -> None:
        self.config = config or VoGConfig()

    def score(self, pool: pl.DataFrame, target: pl.DataFrame | None = None, *, adapter: ModelAdapter | None = None,
              models: Sequence[nn.Module] | None = None) -> DifficultyScores:
        """VoG of every row of ``pool`` over the models (checkpoints in training order)."""
        started = time.perf_counter()
        adapter, models = _models(self.name, self.config, adapter, models)
        clf = require_kind(adapter, "classifier", what="VoG")
        frame = pool
        vog = np.zeros(frame.height)
        labels = np.zeros(frame.height, dtype=np.int64)
        for start, batch in _batches(clf, frame, self.config.batch_size):
            y = _labels(batch, self.name)
            grads = []
            for model in models:
                model.eval()
                x = batch["x"].clone().requires_grad_(True)
                logit = clf.logits(model, {**batch, "x": x}).gather(1, y[:, None]).sum()
                grads.append(torch.autograd.grad(logit, x)[0].double())
            stacked = torch.stack(grads)  # [K, batch, features]
            spread = ((stacked - stacked.mean(0)) ** 2).mean(0).sqrt().mean(-1)
            vog[start : start + len(y)] = spread.numpy()
            labels[start : start + len(y)] = y.numpy()
        if self.config.class_normalize:
            for c in np.unique(labels):
                part = labels == c
                sd = vog[part].std()
                vog[part] = (vog[part] - vog[part].mean()) / (sd if sd > 0 else 1.0)
        return _wrap(frame, vog, self.name, self.config, started, n_checkpoints=len(models))


class EL2NScorer:
    """Registered as ``el2n``: mean L2 norm of the error vector ``softmax - onehot`` over models."""

    name: ClassVar[str] = "el2n"
    config_cls: ClassVar[type] = DifficultyConfig

    def __init__(self, config: DifficultyConfig | None = None) -> None:
        self.config = config or DifficultyConfig()

    @torch.no_grad()
    def score(self, pool: pl.DataFrame, target: pl.DataFrame | None = None, *, adapter: ModelAdapter | None = None,
              models: Sequence[nn.Module] | None = None) -> DifficultyScores:
        """EL2N of every row of ``pool``, averaged over the models."""
        started = time.perf_counter()
        adapter, models = _models(self.name, self.config, adapter, models)
        clf = require_kind(adapter, "classifier", what="EL2N")
        frame = pool
        out = np.zeros(frame.height)
        for start, batch in _batches(clf, frame, self.config.batch_size):
            y = _labels(batch, self.name)
            total = torch.zeros(len(y), dtype=torch.float64)
            for model in models:
                model.eval()
                probs = torch.softmax(clf.logits(model, batch).double(), dim=-1)
                total += (probs - nn.functional.one_hot(y, probs.shape[-1]).double()).norm(dim=-1)
            out[start : start + len(y)] = (total / len(models)).numpy()
        return _wrap(frame, out, self.name, self.config, started, n_models=len(models))


class GraNdScorer:
    """Registered as ``grand``: mean per-example gradient norm of the training loss over models."""

    name: ClassVar[str] = "grand"
    config_cls: ClassVar[type] = DifficultyConfig

    def __init__(self, config: DifficultyConfig | None = None) -> None:
        self.config = config or DifficultyConfig()

    def score(self, pool: pl.DataFrame, target: pl.DataFrame | None = None, *, adapter: ModelAdapter | None = None,
              models: Sequence[nn.Module] | None = None) -> DifficultyScores:
        """GraNd of every row of ``pool`` over the adapter's tracked modules, averaged over the models."""
        started = time.perf_counter()
        adapter, models = _models(self.name, self.config, adapter, models)
        frame = pool
        out = np.zeros(frame.height)
        for model in models:
            model.eval()
            modules = adapter.tracked_modules(model)
            for start, batch in _batches(adapter, frame, self.config.batch_size):
                if ghost_applicable(model, modules):
                    sq = ghost_squared_norms(model, batch, adapter.example_losses, modules)
                else:
                    sq = _looped_squared_norms(adapter, model, batch, modules)
                out[start : start + len(sq)] += sq.clamp_min(0).sqrt().numpy() / len(models)
        return _wrap(frame, out, self.name, self.config, started, n_models=len(models))


def _looped_squared_norms(adapter: ModelAdapter, model: nn.Module, batch: dict, modules: Sequence[str]) -> torch.Tensor:
    """Squared gradient norms one example at a time (for tracked modules that are not all ``nn.Linear``)."""
    named = dict(model.named_modules())
    params = [p for m in modules for p in named[m].parameters(recurse=False) if p.requires_grad]
    n = next(iter(batch.values())).shape[0]
    out = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        loss = adapter.example_losses(model, {k: v[i : i + 1] for k, v in batch.items()}).sum()
        out[i] = sum(g.double().pow(2).sum() for g in torch.autograd.grad(loss, params))
    return out


RECORD_COLUMNS = ("example_id", "step", "correct")


@dataclass(frozen=True, kw_only=True)
class ForgettingConfig:
    """Where the per-presentation records are, which end a selector keeps, how many to flag."""

    records: str = field(default="", metadata={"help": "example_records.parquet of a run trained with "
                                                       "record_examples; empty = records passed in by the caller"})
    prefer: Literal["hard", "easy"] = field(
        default="hard", metadata={"help": "what a selector keeps: hard (forgettable) or easy (unforgettable)"})
    flag_fraction: float = field(default=0.1, metadata={"help": "top share of examples by forgetting flagged"})

    def __post_init__(self) -> None:
        if not 0 <= self.flag_fraction <= 1:
            raise ValueError("flag_fraction must lie in [0, 1]")


class ForgettingScorer:
    """Registered as ``forgetting``: forgetting events counted from the training loop's per-example records."""

    name: ClassVar[str] = "forgetting"
    config_cls: ClassVar[type] = ForgettingConfig

    def __init__(self, config: ForgettingConfig | None = None) -> None:
        self.config = config or ForgettingConfig()

    def score(self, pool: pl.DataFrame | None = None, target: pl.DataFrame | None = None, *,
              records: pl.DataFrame | None = None) -> DifficultyScores:
        """Forgetting events per example from ``records`` (``example_id, step, correct``, one row per
        presentation; default: the ``records`` file); rows in ``pool``'s order when given (examples never
        presented are an error), else in order of first presentation."""
        started = time.perf_counter()
        if records is None:
            if not self.config.records:
                raise DataContractError("forgetting: no records: set options.records to an example_records.parquet")
            records = pl.read_parquet(self.config.records)
        frame = pool
        for column in RECORD_COLUMNS:
            if column not in records.columns:
                raise DataContractError(f"forgetting records: missing column '{column}'")
        if records["correct"].null_count():
            row = int(np.flatnonzero(records["correct"].is_null().to_numpy())[0])
            raise DataContractError(f"forgetting records: row {row}: 'correct' is null (forgetting events need a "
                                    "classifier's per-presentation correctness)")
        per = (
            records.with_row_index("_row").sort("step", "_row")
            .with_columns(prev=pl.col("correct").shift(1).over("example_id"))
            .group_by("example_id", maintain_order=True)
            .agg(events=(pl.col("prev") & ~pl.col("correct")).sum(), learned=pl.col("correct").any(),
                 presentations=pl.len())
        )
        if frame is not None:
            per = frame.select("example_id").join(per, on="example_id", how="left", maintain_order="left")
            if per["presentations"].null_count():
                row = int(np.flatnonzero(per["presentations"].is_null().to_numpy())[0])
                raise DataContractError(f"forgetting: row {row} (example_id {per['example_id'][row]!r}) was never "
                                        "presented in the records")
        events = per["events"].to_numpy().astype(np.float64)
        learned = per["learned"].to_numpy()
        score = np.where(learned, events, per["presentations"].to_numpy().astype(np.float64))
        return _wrap(per, score, self.name, self.config, started,
                     extras={"forgetting_events": per["events"], "never_learned": ~per["learned"]},
                     n_never_learned=int((~learned).sum()))
