"""BETR, benchmark-targeted ranking (Mizrahi et al. 2025; methods spec §13): score a pool by similarity to target
examples, learn that similarity with a cheap classifier, and apply the classifier to the whole pool.

1. Embed the target examples and a seeded sample of the pool (``curation.selection.embedding``: TF-IDF/SVD by
   default, a local sentence-transformers model when configured).
2. Each sampled pool row's similarity = the mean of its ``top_k`` largest cosines to the targets (``top_k: 1`` is
   the max cosine).
3. The top ``positive_fraction`` of the sample by similarity are positives, the rest negatives; a fastText-style
   bag of hashed word 1-2-grams feeds a logistic regression (``classifier: hashed_ngrams``).
4. The classifier's log-odds score every pool row. ``classifier: none`` skips 2-4's learning and scores every row
   by its similarity directly (affordable on small pools; the classifier is what makes BETR scale).

The output follows the issue contract with issue ``off_target``: ``off_target_score`` = minus the target
log-odds (or minus the similarity), so higher = less like the target, and the rows outside the top
``keep_fraction`` are flagged. Which rows are finally kept is the selector's job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import polars as pl

from curation.errors import DataContractError
from curation.selection.embedding import EmbeddingConfig, TextEmbedding
from curation.selection.target_scores import ISSUE, SelectionScores, check_text_tables, selection_scores

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer


@dataclass(frozen=True, kw_only=True)
class BETRConfig:
    """Settings of BETR."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig, metadata={"help": "text embedding"})
    sample_size: int = field(default=5000, metadata={"help": "pool rows labelled by target similarity"})
    top_k: int = field(default=10, metadata={"help": "similarity = mean of the k largest cosines to the targets"})
    positive_fraction: float = field(default=0.1, metadata={"help": "top share of the sample labelled positive"})
    classifier: Literal["hashed_ngrams", "none"] = field(
        default="hashed_ngrams",
        metadata={"help": "hashed_ngrams: logistic regression on hashed word 1-2-grams applied to the whole pool; "
                          "none: score every pool row by its embedding similarity"},
    )
    n_features: int = field(default=2**18, metadata={"help": "hash buckets of the classifier's n-gram features"})
    regularization: float = field(default=1.0, metadata={"help": "inverse L2 strength C of the classifier"})
    keep_fraction: float = field(default=0.1, metadata={"help": "share of the pool not flagged off-target"})
    seed: int = field(default=0, metadata={"help": "seed of the labelled sample and the classifier"})

    def __post_init__(self) -> None:
        if self.sample_size < 2 or self.top_k < 1 or self.n_features < 2 or self.regularization <= 0:
            raise ValueError("sample_size >= 2, top_k >= 1, n_features >= 2 and regularization > 0 are required")
        for name in ("positive_fraction", "keep_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1]")


def target_similarity(pool: np.ndarray, targets: np.ndarray, top_k: int, chunk: int = 2048) -> np.ndarray:
    """Mean of each pool row's ``top_k`` largest cosine similarities to the target rows (rows are unit-norm)."""
    k = min(top_k, targets.shape[0])
    out = np.empty(pool.shape[0], dtype=np.float64)
    for start in range(0, pool.shape[0], chunk):
        sim = pool[start : start + chunk] @ targets.T
        out[start : start + chunk] = np.partition(sim, sim.shape[1] - k, axis=1)[:, -k:].mean(1)
    return out


def hashed_ngrams(n_features: int) -> HashingVectorizer:
    """fastText-style features: L2-normalised counts of lower-cased word unigrams and bigrams, hashed."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=n_features, alternate_sign=False,
                             norm="l2", token_pattern=r"(?u)\b\w+\b|[^\w\s]")


class BETRScorer:
    """Registered as ``betr``: target-similarity labels, a hashed n-gram classifier, the whole pool scored."""

    name: ClassVar[str] = "betr"
    config_cls: ClassVar[type] = BETRConfig
    issue: ClassVar[str] = ISSUE

    def __init__(self, config: BETRConfig | None = None) -> None:
        self.config = config or BETRConfig()

    def score(self, pool: pl.DataFrame, target: pl.DataFrame) -> SelectionScores:
        """Off-target scores of every pool row (``example_id``, ``text``) against the target rows (``text``)."""
        check_text_tables(pool, target, method=self.name)
        started = time.perf_counter()
        cfg = self.config
        texts = pool["text"].fill_null("").to_list()
        target_texts = target["text"].fill_null("").to_list()
        rng = np.random.default_rng(cfg.seed)
        n_sample = min(cfg.sample_size, len(texts))
        sample = np.sort(rng.choice(len(texts), n_sample, replace=False))
        sample_texts = [texts[i] for i in sample]
        embedding = TextEmbedding(cfg.embedding).fit(sample_texts + target_texts)
        target_rows = embedding.encode(target_texts)
        figures: dict[str, float] = {}
        if cfg.classifier == "none":
            likeness = target_similarity(embedding.encode(texts), target_rows, cfg.top_k)
            similarity = likeness
        else:
            sample_sim = target_similarity(embedding.encode(sample_texts), target_rows, cfg.top_k)
            labels = np.zeros(n_sample, dtype=bool)
            n_pos = max(1, int(np.ceil(cfg.positive_fraction * n_sample - 1e-9)))
            labels[np.argsort(-sample_sim, kind="stable")[:n_pos]] = True
            if labels.all() or not labels.any():
                raise DataContractError(f"{self.name}: the labelled sample has one class only; "
                                        "lower positive_fraction or raise sample_size")
            likeness, figures = self._classify(sample_texts, labels, texts)
            similarity = np.full(len(texts), np.nan)
            similarity[sample] = sample_sim
        return selection_scores(
            pool["example_id"].to_list(), likeness, method=self.name, keep_fraction=cfg.keep_fraction,
            extras={"similarity": similarity}, seconds=time.perf_counter() - started,
            n_labelled=n_sample if cfg.classifier != "none" else 0, **figures,
        )

    def _classify(self, sample_texts: list[str], labels: np.ndarray, texts: list[str]) -> tuple[np.ndarray, dict]:
        """Fit the n-gram classifier on the labelled sample; log-odds for every pool text and a held-out AUROC."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        cfg = self.config
        features = hashed_ngrams(cfg.n_features)
        x = features.transform(sample_texts)
        figures: dict[str, float] = {"n_positive": int(labels.sum())}
        held = np.random.default_rng(cfg.seed + 1).random(len(labels)) < 0.2
        if 0 < labels[held].sum() < held.sum() and 0 < labels[~held].sum() < (~held).sum():
            check = LogisticRegression(C=cfg.regularization, class_weight="balanced", max_iter=2000)
            check.fit(x[~held], labels[~held])
            figures["classifier_heldout_auroc"] = float(roc_auc_score(labels[held], check.decision_function(x[held])))
        model = LogisticRegression(C=cfg.regularization, class_weight="balanced", max_iter=2000).fit(x, labels)
        parts = [model.decision_function(features.transform(texts[i : i + 8192])) for i in range(0, len(texts), 8192)]
        return np.concatenate(parts).astype(np.float64), figures
