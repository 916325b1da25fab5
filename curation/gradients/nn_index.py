"""Nearest-neighbour queries over stored gradient features (faiss; optional extra ``selection``).

"Which training examples have the gradient closest to this query's gradient?" is the inner loop of every targeted
selector (LESS, TAROT's per-target nearest candidates, IDEAL's k-NN graph). A brute-force matmul over the whole
store per query is fine for a few queries but not for an interactive lookup over 100k examples, so the features
go into a faiss index once and each query costs milliseconds.

Features of several checkpoints are combined the way LESS scores them: each checkpoint's rows are unit-normalised,
scaled by ``sqrt(w_k)`` and concatenated, so the inner product of two combined rows equals
``sum_k w_k cos(u_k, g_k)`` -- the checkpoint-weighted cosine. ``metric = "ip"`` keeps raw inner products and
``"l2"`` squared Euclidean distance (returned negated, so for every metric a larger score means closer).

Index kinds: ``flat`` is exact; ``ivf`` clusters the rows into ``nlist`` cells and scans ``nprobe`` of them
(approximate, much faster at 100k rows; its recall against ``flat`` is measured in the benchmark).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from curation.errors import CurationError, MissingExtraError
from curation.gradients.store import GradientStore
from curation.io.atomic import atomic_path, write_json

Metric = Literal["cosine", "ip", "l2"]


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingExtraError("gradient nearest-neighbour search needs faiss: pip install 'curation[selection]'") from None
    return faiss


@dataclass(frozen=True, kw_only=True)
class NNIndexConfig:
    """How the gradient index is built and searched."""

    metric: Metric = field(default="cosine", metadata={"help": "cosine (checkpoint-weighted) | ip | l2"})
    kind: Literal["flat", "ivf"] = field(default="flat", metadata={"help": "flat = exact; ivf = clustered, approximate"})
    nlist: int = field(default=0, metadata={"help": "ivf cells; 0 = about 4*sqrt(n_rows)"})
    nprobe: int = field(default=16, metadata={"help": "ivf cells scanned per query (recall/speed trade-off)"})
    threads: int = field(default=0, metadata={"help": "faiss threads; 0 = faiss default"})
    seed: int = field(default=0, metadata={"help": "seed of the ivf k-means"})

    def __post_init__(self) -> None:
        if self.nlist < 0 or self.nprobe < 1 or self.threads < 0:
            raise ValueError("nlist must be >= 0, nprobe >= 1 and threads >= 0")


def combine_checkpoints(features: Sequence[np.ndarray], weights: Sequence[float] | None = None, *,
                        metric: Metric = "cosine") -> np.ndarray:
    """Rows of several checkpoints as one float32 matrix ``[n, sum_k d_k]`` (see the module docstring).

    For ``cosine`` each block is unit-normalised and scaled by ``sqrt(w_k / sum w)``; for ``ip`` / ``l2`` by
    ``sqrt(w_k / sum w)`` only. ``weights`` default to equal.
    """
    if not features:
        raise ValueError("no checkpoint features given")
    n = features[0].shape[0]
    if any(f.ndim != 2 or f.shape[0] != n for f in features):
        raise ValueError(f"every checkpoint needs a [{n}, d] matrix, got {[f.shape for f in features]}")
    w = np.ones(len(features)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(features),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(features)} non-negative numbers with a positive sum, got {weights}")
    w = w / w.sum()
    blocks = []
    for f, wk in zip(features, w, strict=True):
        block = np.asarray(f, dtype=np.float32)
        if metric == "cosine":
            block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        blocks.append(block * np.float32(np.sqrt(wk)))
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)


class GradientNNIndex:
    """A faiss index over ``[n, d]`` gradient features; ``search`` returns ``(indices, scores)``, best first."""

    def __init__(self, features: np.ndarray, config: NNIndexConfig | None = None) -> None:
        faiss = _faiss()
        self.config = config or NNIndexConfig()
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0 or not np.isfinite(x).all():
            raise CurationError(f"gradient index: features must be a finite non-empty [n, d] matrix, got {x.shape}")
        if self.config.threads:
            faiss.omp_set_num_threads(self.config.threads)
        self.n_rows, self.dim = x.shape
        if self.config.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        self.index = self._build(faiss, x)

    def _build(self, faiss: Any, x: np.ndarray) -> Any:
        cfg = self.config
        faiss_metric = faiss.METRIC_L2 if cfg.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if cfg.kind == "flat":
            index = faiss.IndexFlat(self.dim, faiss_metric)
        else:
            nlist = cfg.nlist or max(1, int(4 * np.sqrt(self.n_rows)))
            if nlist > self.n_rows:
                raise CurationError(f"gradient index: nlist={nlist} exceeds the {self.n_rows} stored rows")
            index = faiss.IndexIVFFlat(faiss.IndexFlat(self.dim, faiss_metric), self.dim, nlist, faiss_metric)
            index.cp.seed = cfg.seed
            index.train(x)
            index.nprobe = min(cfg.nprobe, nlist)
        index.add(x)
        return index

    @classmethod
    def from_store(cls, store: GradientStore, checkpoints: Sequence[str], weights: Sequence[float] | None = None,
                   config: NNIndexConfig | None = None) -> GradientNNIndex:
        """Index the features of ``checkpoints`` in ``store`` (combined by ``combine_checkpoints``)."""
        config = config or NNIndexConfig()
        feats = [np.asarray(store.grads(c)) for c in checkpoints]
        return cls(combine_checkpoints(feats, weights, metric=config.metric), config)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored rows closest to each query: ``indices [m, k]`` (int64) and ``scores [m, k]``.

        Scores are cosine / inner product, or negated squared L2 distance, so larger always means closer.
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise CurationError(f"gradient index: queries have width {q.shape[1]}, the index holds width {self.dim}")
        if not 1 <= k <= self.n_rows:
            raise CurationError(f"gradient index: k={k} must lie in [1, {self.n_rows}]")
        if self.config.metric == "cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        scores, idx = self.index.search(q, k)
        return idx.astype(np.int64), (-scores if self.config.metric == "l2" else scores)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index (``index.faiss``) and its config (``index.json``) into folder ``path`` atomically."""
        faiss = _faiss()
        with atomic_path(path, is_dir=True) as tmp:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            write_json({"config": self.config.__dict__, "n_rows": self.n_rows, "dim": self.dim}, tmp / "index.json")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GradientNNIndex:
        """Read an index written by ``save``."""
        import json

        faiss = _faiss()
        path = Path(path)
        meta_path = path / "index.json"
        if not meta_path.exists():
            raise CurationError(f"{meta_path}: missing; not a gradient index folder")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self = cls.__new__(cls)
        self.config = NNIndexConfig(**meta["config"])
        self.n_rows, self.dim = int(meta["n_rows"]), int(meta["dim"])
        self.index = faiss.read_index(str(path / "index.faiss"))
        if self.index.ntotal != self.n_rows or self.index.d != self.dim:
            raise CurationError(f"{path}: index holds {self.index.ntotal}x{self.index.d}, index.json says "
                                f"{self.n_rows}x{self.dim}")
        if self.config.kind == "ivf":
            self.index.nprobe = self.config.nprobe
        return self
