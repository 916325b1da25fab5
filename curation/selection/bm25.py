"""BM25 target relevance, the lexical-retrieval baseline for target-directed selection.

The pool is indexed with the project's Okapi BM25 (``curation.text.bm25``: Lucene variant, the scores of bm25s'
``method="lucene"``, words of 2+ characters); each of up to ``n_queries`` target examples is one query of its
distinct word tokens (Lucene's English stop words removed unless ``stopwords`` is empty). A pool row's selection
score is the mean of its ``top_k`` largest BM25 scores over the queries (the same aggregate as BETR's similarity: a
row that matches a few targets well beats one that matches all weakly); ``off_target_score`` is minus that mean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from curation.selection.target_scores import ISSUE, SelectionScores, check_text_tables, selection_scores
from curation.text.bm25 import ENGLISH_STOP_WORDS, bm25_scores

STOPWORD_LISTS = {"en": ENGLISH_STOP_WORDS, "": frozenset()}


@dataclass(frozen=True, kw_only=True)
class BM25Config:
    """Settings of the BM25 baseline."""

    k1: float = field(default=1.5, metadata={"help": "term-frequency saturation"})
    b: float = field(default=0.75, metadata={"help": "document-length normalisation"})
    n_queries: int = field(default=256, metadata={"help": "at most this many target rows are queries (seeded)"})
    top_k: int = field(default=10, metadata={"help": "score = mean of a row's k largest BM25 scores over queries"})
    stopwords: str = field(default="en", metadata={"help": "'en' (Lucene's English stop words) or empty for none"})
    keep_fraction: float = field(default=0.1, metadata={"help": "share of the pool not flagged off-target"})
    seed: int = field(default=0, metadata={"help": "seed of the query sample"})

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1 or self.n_queries < 1 or self.top_k < 1:
            raise ValueError("k1 >= 0, b in [0, 1], n_queries >= 1 and top_k >= 1 are required")
        if not 0 < self.keep_fraction <= 1:
            raise ValueError("keep_fraction must lie in (0, 1]")
        if self.stopwords not in STOPWORD_LISTS:
            raise ValueError(f"stopwords must be 'en' or empty, got {self.stopwords!r}")


def bm25_relevance(pool_texts: list[str], queries: list[str], cfg: BM25Config) -> np.ndarray:
    """``[n_queries, n_pool]`` BM25 scores of every pool text for every query (distinct query tokens)."""
    return bm25_scores(pool_texts, queries, k1=cfg.k1, b=cfg.b, stopwords=STOPWORD_LISTS[cfg.stopwords]).T


class BM25Scorer:
    """Registered as ``bm25``: mean of each pool row's ``top_k`` largest BM25 scores over the target queries."""

    name: ClassVar[str] = "bm25"
    config_cls: ClassVar[type] = BM25Config
    issue: ClassVar[str] = ISSUE

    def __init__(self, config: BM25Config | None = None) -> None:
        self.config = config or BM25Config()

    def score(self, pool: pl.DataFrame, target: pl.DataFrame) -> SelectionScores:
        """Off-target scores of every pool row (``example_id``, ``text``) against the target rows (``text``)."""
        check_text_tables(pool, target, method=self.name)
        started = time.perf_counter()
        cfg = self.config
        queries = target["text"].fill_null("").to_list()
        if len(queries) > cfg.n_queries:
            pick = np.random.default_rng(cfg.seed).choice(len(queries), cfg.n_queries, replace=False)
            queries = [queries[i] for i in np.sort(pick)]
        relevance = bm25_relevance(pool["text"].fill_null("").to_list(), queries, cfg)
        k = min(cfg.top_k, len(queries))
        wanted = np.partition(relevance, len(queries) - k, axis=0)[-k:].mean(0)
        return selection_scores(pool["example_id"].to_list(), wanted, method=self.name,
                                keep_fraction=cfg.keep_fraction, seconds=time.perf_counter() - started,
                                n_queries=len(queries), n_queries_matched=int((relevance.max(1) > 0).sum()))
