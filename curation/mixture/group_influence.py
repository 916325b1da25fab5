"""TiKMiX group influence: how much up-weighting each training domain changes each validation task's loss.

For a domain sample ``G_j`` (the same token budget for every domain, so sums are comparable) and a validation task
``i`` with mean loss ``f_i``, the influence of up-weighting every member of ``G_j`` by ε is
``dF_i/dε = −∇f_iᵀ H⁻¹ Σ_{z∈G_j} g(z)``. We store its negation, ``S[i, j] = +∇f_iᵀ H⁻¹ G_j``, the predicted
*loss reduction*, so that larger is better (the sign fix of the methods spec, §1.1). ``G_j`` is obtained by plain
gradient accumulation over the domain sample (one backward per batch, no per-example gradients), and only
``min(n_tasks, n_domains)`` inverse-Hessian–vector products are needed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.errors import DataContractError
from curation.gradients.per_example import tracked_parameters
from curation.mixture.hessian import HessianConfig, InverseHessian, make_inverse_hessian
from curation.models.base import ModelAdapter
from curation.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GroupInfluenceConfig:
    """How group influence is measured."""

    tokens_per_domain: int = field(default=16384, metadata={"help": "tokens sampled from each domain (bytes for byte_gpt; rows for models without a target_mask)"})
    domain_column: str = field(default="domain", metadata={"help": "training-table column naming the domain"})
    task_column: str = field(default="domain", metadata={"help": "validation-table column naming the task"})
    tasks: tuple[str, ...] = field(default=(), metadata={"help": "validation tasks to use; empty = every value of task_column"})
    max_rows_per_task: int = field(default=256, metadata={"help": "validation rows per task (sampled) used for ∇f_i"})
    hessian: HessianConfig = field(default_factory=HessianConfig, metadata={"help": "inverse-Hessian approximation"})
    batch_size: int = field(default=32, metadata={"help": "rows per forward/backward pass"})
    seed: int = field(default=0, metadata={"help": "seed for the domain and validation samples"})

    def __post_init__(self) -> None:
        if self.tokens_per_domain < 1 or self.max_rows_per_task < 1 or self.batch_size < 1:
            raise ValueError("tokens_per_domain, max_rows_per_task and batch_size must be >= 1")


class InfluenceProbe:
    """Scores any summed training gradient against the validation tasks exactly as group influence does.

    Holds the tasks' mean validation gradients ``∇f_i`` and the inverse-Hessian approximation of one measurement;
    ``influence(G)`` is ``∇f_iᵀ H⁻¹ G`` for every task (``H⁻¹ ∇f_i`` solved once, on first use), so the influence
    of, e.g., a mixed sample is measured on the same footing as the domain samples (the additivity check).
    """

    def __init__(self, inverse: InverseHessian, task_grads: torch.Tensor, modules: Sequence[str]) -> None:
        self.inverse, self.task_grads, self.modules = inverse, task_grads, list(modules)
        self._directions: torch.Tensor | None = None

    def influence(self, gradients: torch.Tensor) -> np.ndarray:
        """``[k, P]`` summed gradients -> ``[n_tasks, k]`` influences (positive = lowers the task's loss)."""
        if self._directions is None:
            self._directions = self.inverse.solve(self.task_grads)
        return (self._directions @ gradients.T).detach().double().numpy()


@dataclass(frozen=True)
class GroupInfluence:
    """Influence matrix ``[n_tasks, n_domains]`` (positive = domain lowers the task's loss) and its provenance."""

    matrix: np.ndarray
    tasks: tuple[str, ...]
    domains: tuple[str, ...]
    tokens: tuple[int, ...]  # tokens actually sampled per domain
    rows: tuple[int, ...]  # rows actually sampled per domain
    hessian: str
    probe: InfluenceProbe | None = field(default=None, repr=False, compare=False)  # re-scores other samples

    def normalized(self, eps: float = 1e-8) -> np.ndarray:
        """Per-task normalisation ``S[i, j] / (max_j S[i, j] + eps)`` (see ``normalize_per_task``)."""
        return normalize_per_task(self.matrix, eps, tasks=self.tasks)

    def frame(self) -> pl.DataFrame:
        """Long table ``task, domain, influence, normalized, tokens``."""
        norm = self.normalized()
        return pl.DataFrame(
            {
                "task": [t for t in self.tasks for _ in self.domains],
                "domain": list(self.domains) * len(self.tasks),
                "influence": self.matrix.reshape(-1).astype(np.float64),
                "normalized": norm.reshape(-1).astype(np.float64),
                "tokens": list(self.tokens) * len(self.tasks),
            }
        )


def normalize_per_task(matrix: np.ndarray, eps: float = 1e-8, *, tasks: Sequence[str] | None = None,
                       baseline: np.ndarray | None = None) -> np.ndarray:
    """TiKMiX-D's per-task normalisation ``P̂``.

    Without ``baseline`` (the paper): each task's row divided by its largest domain influence plus ``eps``.
    With ``baseline`` (a prior mixture ``w₀``): each row's gain over the prior, ``(S[i, j] − S[i]·w₀)``, divided by
    the largest achievable gain ``max_j S[i, j] − S[i]·w₀``. The second form is invariant to an influence shared
    by every domain (a constant per row, which no mixture of a fixed token budget can change): at an early
    checkpoint that shared part dominates ``S`` and squeezes the paper's ``P̂`` into a narrow band near 1.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if baseline is not None:
        matrix = matrix - (matrix @ np.asarray(baseline, dtype=np.float64))[:, None]
    return matrix / task_denominators(matrix, eps, tasks=tasks)[:, None]


def task_denominators(matrix: np.ndarray, eps: float = 1e-8, *, tasks: Sequence[str] | None = None) -> np.ndarray:
    """Per-task divisor of ``normalize_per_task``: ``max_j S[i, j] + eps``.

    When no domain helps a task (``max_j S[i, j] <= 0``; with a baseline: every domain is equally good) that
    denominator would flip the sign or vanish, so the row's largest absolute value is used instead (1 for an
    all-zero row) and a warning names the task.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    top = matrix.max(axis=1)
    denom = top + eps
    for i in np.flatnonzero(top <= 0):
        name = tasks[i] if tasks is not None else i
        log.warning("no domain lowers task %s's loss (max influence %.3g); normalising by max |S|", name, top[i])
        denom[i] = (np.abs(matrix[i]).max() or 1.0) + eps
    return denom


def row_tokens(adapter: ModelAdapter, frame: pl.DataFrame, chunk: int = 256) -> np.ndarray:
    """Tokens each row contributes to its loss (``target_mask`` sum; 1 per row for models without one)."""
    counts = []
    for start in range(0, frame.height, chunk):
        batch = adapter.collate(frame.slice(start, chunk))
        mask = batch.get("target_mask")
        n = next(iter(batch.values())).shape[0]
        counts.append(mask.sum(-1).numpy() if mask is not None else np.ones(n))
    return np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, dtype=np.int64)


def sample_domain(
    adapter: ModelAdapter, frame: pl.DataFrame, tokens: int, *, seed: int, where: str = "domain"
) -> pl.DataFrame:
    """Rows of ``frame`` in a seeded random order, up to the first row at which ``tokens`` are reached."""
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    counts = np.cumsum(row_tokens(adapter, shuffled))
    n = int(np.searchsorted(counts, tokens) + 1) if counts.size else 0
    if counts.size == 0 or counts[-1] < tokens:
        log.warning("%s has only %d tokens (< %d requested); using all of them", where,
                    int(counts[-1]) if counts.size else 0, tokens)
    return shuffled.head(min(n, shuffled.height))


def summed_gradient(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, modules: Sequence[str], *,
    batch_size: int = 32, mean: bool = False,
) -> torch.Tensor:
    """``Σ_z ∇ℓ(z)`` (or the mean) over the rows of ``frame``, by gradient accumulation, flattened like
    ``curation.gradients.per_example_gradients``."""
    model.eval()
    all_params = dict(model.named_parameters())
    params = [all_params[n] for n in tracked_parameters(model, modules)]
    total = [torch.zeros_like(p) for p in params]
    for start in range(0, frame.height, batch_size):
        batch = adapter.collate(frame.slice(start, batch_size))
        loss = adapter.example_losses(model, batch).sum()
        for acc, g in zip(total, torch.autograd.grad(loss, params), strict=True):
            acc += g
    flat = torch.cat([t.reshape(-1) for t in total])
    return flat / max(frame.height, 1) if mean else flat


def _groups(frame: pl.DataFrame, column: str, where: str) -> list[str]:
    if column not in frame.columns:
        raise DataContractError(f"{where}: missing column '{column}'")
    if frame.height == 0:
        raise DataContractError(f"{where}: no rows")
    if frame[column].null_count():
        row = int(frame[column].is_null().arg_true()[0])
        raise DataContractError(f"{where}: column '{column}' is null at row {row}")
    return sorted(frame[column].cast(pl.Utf8).unique().to_list())


def group_influence(
    adapter: ModelAdapter,
    model: nn.Module,
    train: pl.DataFrame,
    val: pl.DataFrame,
    cfg: GroupInfluenceConfig,
    *,
    modules: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
) -> GroupInfluence:
    """Influence matrix of every training domain on every validation task at ``model``'s parameters."""
    modules = list(modules) if modules is not None else adapter.tracked_modules(model)
    all_domains = _groups(train, cfg.domain_column, "training table")
    domains = list(domains) if domains is not None else all_domains
    unknown = sorted(set(domains) - set(all_domains))
    if unknown:
        raise DataContractError(f"training table: column '{cfg.domain_column}' has no rows of domain(s) {unknown}")
    all_tasks = _groups(val, cfg.task_column, "validation table")
    tasks = list(cfg.tasks) or all_tasks
    unknown = sorted(set(tasks) - set(all_tasks))
    if unknown:
        raise DataContractError(f"validation table: column '{cfg.task_column}' has no rows of task(s) {unknown}")

    samples = [
        sample_domain(adapter, train.filter(pl.col(cfg.domain_column).cast(pl.Utf8) == d), cfg.tokens_per_domain,
                      seed=cfg.seed, where=f"training domain '{d}'")
        for d in domains
    ]
    hessian_rows = pl.concat(samples).sample(n=min(cfg.hessian.rows, sum(s.height for s in samples)), seed=cfg.seed)
    inverse = make_inverse_hessian(cfg.hessian, adapter, model, hessian_rows, modules)
    with progress_bar(total=len(domains) + len(tasks), description="group influence") as advance:
        group_grads = []
        for sample in samples:
            group_grads.append(summed_gradient(adapter, model, sample, modules, batch_size=cfg.batch_size))
            advance(1)
        task_grads = []
        for t in tasks:
            rows = val.filter(pl.col(cfg.task_column).cast(pl.Utf8) == t)
            rows = rows.sample(n=min(cfg.max_rows_per_task, rows.height), seed=cfg.seed)
            task_grads.append(summed_gradient(adapter, model, rows, modules, batch_size=cfg.batch_size, mean=True))
            advance(1)
    g_domains, g_tasks = torch.stack(group_grads), torch.stack(task_grads)
    if len(tasks) <= len(domains):
        matrix = inverse.solve(g_tasks) @ g_domains.T
    else:
        matrix = g_tasks @ inverse.solve(g_domains).T
    return GroupInfluence(
        matrix=matrix.detach().double().numpy(),
        tasks=tuple(tasks),
        domains=tuple(domains),
        tokens=tuple(int(row_tokens(adapter, s).sum()) for s in samples),
        rows=tuple(s.height for s in samples),
        hessian=inverse.name,
        probe=InfluenceProbe(inverse, g_tasks, modules),
    )
