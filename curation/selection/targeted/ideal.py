"""IDEAL (Zhang et al., ICLR 2024; methods spec section 14): which examples to annotate under a budget, chosen by
greedy influence maximisation on a k-NN graph of the unlabelled pool.

Each row links to its ``k`` nearest neighbours (cosine, faiss via ``curation.gradients.nn_index``). The influence
``sigma(S)`` of a set is the expected number of rows an independent cascade seeded at ``S`` activates, every edge
firing with probability ``activation_prob`` [O: the paper's edge weights were not verified]. ``sigma`` is
estimated on ``realizations`` fixed live-edge graphs (each edge kept with that probability): ``sigma(S)`` is the
mean size of the set reachable from ``S``. It is monotone submodular, so greedy selection -- here lazy (CELF) --
gets at least ``(1 - 1/e)`` of the best set of the same size on these realizations.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from curation.errors import DataContractError
from curation.gradients.nn_index import GradientNNIndex, NNIndexConfig


def knn_graph(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges ``src -> dst``: each row to its ``k`` nearest other rows (cosine)."""
    n = len(embeddings)
    if not 1 <= k < n:
        raise DataContractError(f"IDEAL: k={k} neighbours need 1 <= k < {n} rows")
    idx, _ = GradientNNIndex(embeddings, NNIndexConfig(metric="cosine")).search(embeddings, k + 1)
    src = np.repeat(np.arange(n), k + 1)
    dst = idx.ravel()
    keep = (dst != src) & (dst >= 0)
    src, dst = src[keep], dst[keep]
    # a row whose duplicates crowd itself out of its own list keeps k + 1 others; trim to k per source
    first = np.concatenate([[True], src[1:] != src[:-1]])
    rank = np.arange(len(src)) - np.maximum.accumulate(np.where(first, np.arange(len(src)), 0))
    return src[rank < k], dst[rank < k]


class Cascades:
    """Live-edge realizations of an independent cascade and the reachable sets they induce."""

    def __init__(self, n: int, src: np.ndarray, dst: np.ndarray, *, prob: float, realizations: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.graphs = []
        for _ in range(realizations):
            live = rng.random(len(src)) < prob
            self.graphs.append(csr_matrix((np.ones(int(live.sum())), (src[live], dst[live])), shape=(n, n)))
        self._reach: dict[tuple[int, int], np.ndarray] = {}

    def reach(self, r: int, node: int) -> np.ndarray:
        """Rows reachable from ``node`` in realization ``r`` (including ``node``)."""
        key = (r, node)
        if key not in self._reach:
            self._reach[key] = breadth_first_order(self.graphs[r], node, directed=True, return_predecessors=False)
        return self._reach[key]

    def spread(self, seeds: list[int]) -> float:
        """Monte-Carlo ``sigma(seeds)``: mean number of activated rows over the realizations."""
        total = 0
        for r in range(len(self.graphs)):
            covered = np.zeros(self.n, dtype=bool)
            for s in seeds:
                covered[self.reach(r, s)] = True
            total += int(covered.sum())
        return total / len(self.graphs)


def greedy_influence(cascades: Cascades, budget: int) -> list[int]:
    """Lazy greedy (CELF) maximisation of ``sigma``; returns the seeds in the order they were chosen."""
    n, reps = cascades.n, len(cascades.graphs)
    if not 0 <= budget <= n:
        raise DataContractError(f"IDEAL: budget {budget} must lie in [0, {n}]")
    covered = np.zeros((reps, n), dtype=bool)

    def gain(v: int) -> float:
        return sum(int((~covered[r][cascades.reach(r, v)]).sum()) for r in range(reps)) / reps

    heap = [(-gain(v), v, 0) for v in range(n)]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < budget:
        _, v, stamp = heapq.heappop(heap)
        if stamp == len(chosen):
            chosen.append(v)
            for r in range(reps):
                covered[r][cascades.reach(r, v)] = True
        else:
            heapq.heappush(heap, (-gain(v), v, len(chosen)))
    return chosen


@dataclass(frozen=True, kw_only=True)
class IDEALConfig:
    """Graph, diffusion and annotation budget."""

    budget: int = field(default=100, metadata={"help": "rows to annotate"})
    k: int = field(default=10, metadata={"help": "nearest neighbours per row in the graph"})
    activation_prob: float = field(default=0.1, metadata={"help": "probability that an edge fires in the cascade"})
    realizations: int = field(default=20, metadata={"help": "Monte-Carlo live-edge graphs"})
    seed: int = field(default=0, metadata={"help": "seed of the realizations"})

    def __post_init__(self) -> None:
        if self.budget < 0 or self.k < 1 or not 0 < self.activation_prob <= 1 or self.realizations < 1:
            raise ValueError("budget >= 0, k >= 1, activation_prob in (0, 1] and realizations >= 1 are required")


class IDEALSelector:
    """Registered as ``ideal``: pool embeddings -> the annotation set that maximises k-NN-graph influence."""

    name: ClassVar[str] = "ideal"
    config_cls: ClassVar[type] = IDEALConfig

    def __init__(self, config: IDEALConfig | None = None) -> None:
        self.config = config or IDEALConfig()

    def select(self, embeddings: np.ndarray, example_ids: pl.Series) -> pl.DataFrame:
        """``example_id, keep, rank`` (greedy order, null when not chosen) in input order."""
        cfg = self.config
        n = len(embeddings)
        if len(example_ids) != n:
            raise DataContractError(f"IDEAL: {len(example_ids)} example ids for {n} embeddings")
        src, dst = knn_graph(embeddings, cfg.k)
        cascades = Cascades(n, src, dst, prob=cfg.activation_prob, realizations=cfg.realizations, seed=cfg.seed)
        order = greedy_influence(cascades, cfg.budget)
        self.spread = cascades.spread(order)
        rank = np.full(n, np.nan)
        rank[order] = np.arange(1, len(order) + 1)
        return pl.DataFrame({"example_id": example_ids, "keep": ~np.isnan(rank),
                             "rank": pl.Series(rank, dtype=pl.Float64).fill_nan(None).cast(pl.Int64)})
