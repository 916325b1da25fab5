"""DSIR: data selection by importance resampling on hashed n-gram features (Xie et al., NeurIPS 2023).

Spec: docs methods-influence-selection.md section 10. Each text becomes a bucket-count vector ``c(x)`` of hashed
unigrams + bigrams (:mod:`curation.selection.hashed_ngrams`, the features of data-selection 1.0.3). Two
bag-of-words models are fitted: the raw pool ``beta_j ~ sum_x c_j(x)`` (over the first ``fit_tokens`` features)
and the target ``gamma_j`` (all target features, plus an optional Laplace pseudo-count). The importance weight of a
pool text is ``log w(x) = sum_j c_j(x) (log(gamma_j + 1e-8) - log(beta_j + 1e-8))``; texts shorter than
``min_example_length`` tokens are ineligible. The Selector (``method = gumbel``) then draws ``k`` texts without
replacement proportionally to ``w`` by Gumbel top-k; ``topk`` keeps the largest weights.

The pool streams over shards (:mod:`curation.selection.text_shards`): one pass featurises every shard -- in this
process or as Ray tasks (:mod:`curation.executors`) -- and spills each shard's features to a temporary folder, so
memory holds one shard's features plus a float per pool row. Counts are summed and weights computed in shard
order on the driver, so local and Ray runs give identical weights.

**KL reduction** (the paper's data metric): ``KL(p_T || q_random) - KL(p_T || q_selected)`` on the same hashed
features, where ``q_random`` is the feature distribution of a uniformly random pool subset with as many rows as
the selection (seeded); positive = the selection is closer to the target than random data of its size. Both
``q`` get one pseudo-count per bucket (see :func:`kl_divergence`); comparing equal sizes keeps that smoothing
from favouring the (larger) whole pool.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from curation.errors import DataContractError
from curation.executors import ExecutorConfig, map_shards
from curation.progress import progress_bar
from curation.selection.hashed_ngrams import HashedNgrams, hashed_ngrams
from curation.selection.selector import Selector, SelectorConfig
from curation.selection.text_shards import Shard, TextSource, shards

EPS = 1e-8  # data-selection's smoothing inside the logs


@dataclass(frozen=True, kw_only=True)
class DSIRConfig:
    """Hashed n-gram DSIR: feature space, raw/target fitting, length filter, sharding and where shards run."""

    ngrams: int = field(default=2, metadata={"help": "n-gram order: 2 = unigrams + bigrams"})
    num_buckets: int = field(default=10_000, metadata={"help": "hash buckets (features)"})
    min_example_length: int = field(default=100, metadata={"help": "texts with fewer tokens are never selected"})
    fit_tokens: int = field(default=0, metadata={"help": "raw features used to fit the pool model; 0 = 100,000 x "
                                                          "num_buckets (data-selection's 'auto')"})
    target_laplace: float = field(default=0.0, metadata={"help": "pseudo-count added to every target bucket"})
    text_column: str = field(default="text", metadata={"help": "text column of pool and target"})
    id_column: str = field(default="example_id", metadata={"help": "unique id column of the pool"})
    shard_rows: int = field(default=20_000, metadata={"help": "rows per shard (bounds memory per worker)"})
    executor: ExecutorConfig = field(default_factory=ExecutorConfig,
                                     metadata={"help": "where shards are featurised: local | ray"})

    def __post_init__(self) -> None:
        if self.ngrams < 1 or self.num_buckets < 2:
            raise ValueError("ngrams must be >= 1 and num_buckets >= 2")
        if self.min_example_length < 0 or self.fit_tokens < 0 or self.target_laplace < 0:
            raise ValueError("min_example_length, fit_tokens and target_laplace must be >= 0")
        if self.shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {self.shard_rows}")


@dataclass(frozen=True)
class DSIRFit:
    """The two fitted bag-of-words models (bucket counts; the target's include its Laplace pseudo-count) and the
    per-bucket log importance ratio."""

    raw_counts: np.ndarray
    target_counts: np.ndarray
    log_diff: np.ndarray


def fit_log_diff(raw_counts: np.ndarray, target_counts: np.ndarray, *, laplace: float = 0.0) -> DSIRFit:
    """``log(gamma + 1e-8) - log(beta + 1e-8)`` from raw and target bucket counts."""
    target = target_counts.astype(np.float64) + laplace
    raw_probs = raw_counts / max(raw_counts.sum(), 1)
    target_probs = target / max(target.sum(), 1e-300)
    return DSIRFit(raw_counts, target, np.log(target_probs + EPS) - np.log(raw_probs + EPS))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """``KL(p || q)`` of bucket counts ``p`` and ``q``, with one pseudo-count per bucket added to ``q`` (Laplace):
    a bucket the selection never saw then costs a finite amount instead of ``log 1e-8``, so a small but
    on-target selection is not scored as far from the target."""
    p = p / max(p.sum(), 1e-300)
    q = (q + 1.0) / (q.sum() + len(q))
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def kl_reduction(target_counts: np.ndarray, random_counts: np.ndarray, selected_counts: np.ndarray) -> float:
    """``KL(target || random) - KL(target || selected)``: how much closer to the target the selection is."""
    return kl_divergence(target_counts, random_counts) - kl_divergence(target_counts, selected_counts)


def random_like(keep: np.ndarray, seed: int = 0) -> np.ndarray:
    """A uniformly random row mask with as many rows set as ``keep`` (the KL-reduction baseline)."""
    mask = np.zeros(len(keep), dtype=bool)
    mask[np.random.default_rng(seed).choice(len(keep), int(keep.sum()), replace=False)] = True
    return mask


def featurize_shard(shard: Shard, *, columns: tuple[str, ...], ngrams: int,
                    num_buckets: int) -> tuple[pl.DataFrame, HashedNgrams]:
    """One shard's columns (ids, texts) and its hashed n-gram features (the unit of work a Ray task runs)."""
    frame = shard.read(columns)
    features = hashed_ngrams(frame[columns[-1]], ngrams=ngrams, num_buckets=num_buckets)
    return frame.drop(columns[-1]), features


class DSIRRun:
    """A fitted DSIR over one pool: ``scores`` (the Selector's input) and the features spilled per shard."""

    def __init__(self, scores: pl.DataFrame, fit: DSIRFit, spill: Path, n_shards: int, num_buckets: int) -> None:
        self.scores = scores
        self.fit = fit
        self._spill, self._n_shards, self._num_buckets = spill, n_shards, num_buckets

    def counts(self, keep: np.ndarray | None = None) -> np.ndarray:
        """Bucket counts over the pool rows where ``keep`` is true (all rows when None)."""
        total = np.zeros(self._num_buckets, dtype=np.int64)
        start = 0
        for index in range(self._n_shards):
            features = _load(self._spill, index)
            rows = len(features.length)
            total += features.counts(self._num_buckets, None if keep is None else keep[start:start + rows])
            start += rows
        return total

    def kl_reduction(self, keep: np.ndarray, seed: int = 0) -> float:
        """KL reduction of the rows where ``keep`` is true against a random subset of the same size."""
        return kl_reduction(self.fit.target_counts, self.counts(random_like(keep, seed)), self.counts(keep))


class DSIRScorer:
    """Registered as ``dsir`` in ``curation.selection_scorers``: pool + target texts -> log importance weights
    (``example_id, score, eligible, length``) for the Selector, over shards, locally or on Ray."""

    name: ClassVar[str] = "dsir"
    config_cls: ClassVar[type] = DSIRConfig
    streams: ClassVar[bool] = True  # takes the pool as Parquet files and reads it shard by shard

    def __init__(self, config: DSIRConfig | None = None) -> None:
        self.config = config or DSIRConfig()

    def score(self, pool: TextSource, target: TextSource) -> pl.DataFrame:
        """``example_id, score, eligible, length`` for every pool row, in pool order."""
        with self.fitted(pool, target) as run:
            return run.scores

    @contextmanager
    def fitted(self, pool: TextSource, target: TextSource) -> Iterator[DSIRRun]:
        """Fit on ``pool`` and ``target`` and yield the run (its spilled features live until the block ends)."""
        cfg = self.config
        spill = Path(tempfile.mkdtemp(prefix="curation-dsir-"))
        try:
            ids, lengths, n_shards = self._featurize_pool(pool, spill)
            target_counts = self._target_counts(target)
            raw_counts = self._raw_counts(lengths, spill, n_shards)
            fit = fit_log_diff(raw_counts, target_counts, laplace=cfg.target_laplace)
            score = np.concatenate([_load(spill, i).doc_sums(fit.log_diff) for i in range(n_shards)])
            length = np.concatenate(lengths)
            scores = pl.DataFrame({cfg.id_column: pl.concat(ids), "score": score,
                                   "eligible": length >= cfg.min_example_length, "length": length})
            if cfg.id_column != "example_id":
                scores = scores.rename({cfg.id_column: "example_id"})
            yield DSIRRun(scores, fit, spill, n_shards, cfg.num_buckets)
        finally:
            shutil.rmtree(spill, ignore_errors=True)

    def _map(self, source: TextSource, columns: tuple[str, ...], what: str) -> Iterator[tuple[int, Any]]:
        cfg = self.config
        parts = shards(source, shard_rows=cfg.shard_rows)
        if not parts:
            raise DataContractError(f"dsir: the {what} is empty")
        with progress_bar(total=len(parts), description=f"dsir: featurising the {what}") as advance:
            for index, result in map_shards(featurize_shard, parts, config=cfg.executor,
                                            shared={"columns": columns, "ngrams": cfg.ngrams,
                                                    "num_buckets": cfg.num_buckets}):
                advance(1)
                yield index, result

    def _featurize_pool(self, pool: TextSource, spill: Path) -> tuple[list[pl.Series], list[np.ndarray], int]:
        cfg = self.config
        _check_columns(pool, (cfg.id_column, cfg.text_column), "pool")
        ids: dict[int, pl.Series] = {}
        lengths: dict[int, np.ndarray] = {}
        for index, (frame, features) in self._map(pool, (cfg.id_column, cfg.text_column), "pool"):
            np.savez(spill / f"{index}.npz", bucket=features.bucket, doc=features.doc, length=features.length)
            ids[index], lengths[index] = frame[cfg.id_column], features.length
        order = sorted(ids)
        all_ids = pl.concat([ids[i] for i in order])
        if all_ids.len() == 0:
            raise DataContractError("dsir: the pool is empty")
        if all_ids.n_unique() != all_ids.len():
            row = int(np.flatnonzero(all_ids.is_duplicated().to_numpy())[1])
            raise DataContractError(f"dsir: pool row {row}: duplicate {cfg.id_column} {all_ids[row]!r}")
        return [ids[i] for i in order], [lengths[i] for i in order], len(order)

    def _target_counts(self, target: TextSource) -> np.ndarray:
        cfg = self.config
        _check_columns(target, (cfg.text_column,), "target")
        total = np.zeros(cfg.num_buckets, dtype=np.int64)
        for _, (_, features) in self._map(target, (cfg.text_column,), "target"):
            total += features.counts(cfg.num_buckets)
        if not total.any():
            raise DataContractError(f"dsir: the target has no tokens in column '{cfg.text_column}'")
        return total

    def _raw_counts(self, lengths: list[np.ndarray], spill: Path, n_shards: int) -> np.ndarray:
        """Pool counts over documents in row order until the running feature count first exceeds the cap (the
        document that crosses it included, as data-selection does)."""
        cfg = self.config
        cap = cfg.fit_tokens or 100_000 * cfg.num_buckets
        total = np.zeros(cfg.num_buckets, dtype=np.int64)
        for index in range(n_shards):
            features = _load(spill, index)
            per_doc = np.bincount(features.doc, minlength=len(features.length))
            running = total.sum() + np.cumsum(per_doc)
            over = np.flatnonzero(running > cap)
            if over.size:
                docs = np.arange(len(per_doc)) <= over[0]
                return total + features.counts(cfg.num_buckets, docs)
            total += features.counts(cfg.num_buckets)
        return total


def _load(spill: Path, index: int) -> HashedNgrams:
    data = np.load(spill / f"{index}.npz")
    return HashedNgrams(data["bucket"], data["doc"], data["length"])


def _check_columns(source: TextSource, columns: tuple[str, ...], what: str) -> None:
    if isinstance(source, pl.DataFrame):
        for column in columns:
            if column not in source.columns:
                raise DataContractError(f"dsir: {what} table: missing column '{column}' "
                                        f"(columns: {', '.join(source.columns)})")


def selection_kl_reduction(pool: TextSource, target: pl.DataFrame, keep: np.ndarray, *, text_column: str = "text",
                           config: DSIRConfig | None = None, seed: int = 0) -> float:
    """KL reduction of any selection (``keep``, per pool row in order) on DSIR's hashed n-gram features: the
    paper's method-agnostic data metric. Streams over the pool's shards like the DSIR fit."""
    cfg = config or DSIRConfig()
    parts = shards(pool, shard_rows=cfg.shard_rows)
    offsets = np.concatenate([[0], np.cumsum([p.rows for p in parts])])
    if offsets[-1] != len(keep):
        raise DataContractError(f"kl reduction: {len(keep)} decisions for {offsets[-1]} pool rows")
    baseline = random_like(keep, seed)
    random_counts = np.zeros(cfg.num_buckets, dtype=np.int64)
    kept_counts = np.zeros(cfg.num_buckets, dtype=np.int64)
    shared = {"columns": (text_column,), "ngrams": cfg.ngrams, "num_buckets": cfg.num_buckets}
    for index, (_, features) in map_shards(featurize_shard, parts, config=cfg.executor, shared=shared):
        rows = slice(offsets[index], offsets[index + 1])
        random_counts += features.counts(cfg.num_buckets, baseline[rows])
        kept_counts += features.counts(cfg.num_buckets, keep[rows])
    target_counts = hashed_ngrams(target[text_column], ngrams=cfg.ngrams, num_buckets=cfg.num_buckets)
    return kl_reduction(target_counts.counts(cfg.num_buckets), random_counts, kept_counts)


@dataclass(frozen=True)
class DSIRSelection:
    """What :func:`select_dsir` returns: the decision, the kept rows and the figures of the run."""

    selection: pl.DataFrame
    kept: pl.DataFrame
    kl_reduction: float
    figures: dict[str, float]


def select_dsir(pool_table: pl.DataFrame, target_table: pl.DataFrame, budget: float, *,
                budget_kind: str = "count", method: str = "gumbel", seed: int = 0,
                dsir: DSIRConfig | None = None, **selector_options: Any) -> DSIRSelection:
    """DSIR-select ``budget`` rows of ``pool_table`` (``example_id, text``) towards ``target_table`` (``text``).

    ``budget_kind`` is ``count``, ``fraction`` or ``tokens``; ``method`` ``gumbel`` (importance resampling) or
    ``topk``; further Selector options (``group_column``, ``quotas``, ``dedup``, ...) pass through.
    """
    dsir = dsir or DSIRConfig()
    selector = Selector(SelectorConfig(budget=budget_kind, value=float(budget), method=method, seed=seed,
                                       text_column=dsir.text_column, **selector_options))
    with DSIRScorer(dsir).fitted(pool_table, target_table) as run:
        frame = run.scores.join(pool_table.select(pl.col(dsir.id_column).alias("example_id"),
                                                  *_extra_columns(pool_table, selector.config, dsir)),
                                on="example_id", how="left", maintain_order="left")
        selection = selector.select(frame, where="dsir")
        keep = selection["keep"].to_numpy()
        klr = run.kl_reduction(keep)
    kept = pool_table.filter(pl.Series(keep))
    figures = {"kl_reduction": klr, "kept": float(keep.sum()), "eligible": float(run.scores["eligible"].sum()),
               "pool_rows": float(pool_table.height)}
    return DSIRSelection(selection, kept, klr, figures)


def _extra_columns(pool: pl.DataFrame, cfg: SelectorConfig, dsir: DSIRConfig) -> list[str]:
    wanted = {cfg.text_column, cfg.group_column, cfg.token_column} - {"", dsir.id_column}
    return [c for c in pool.columns if c in wanted]
