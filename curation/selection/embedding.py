"""Text embeddings for target-similarity selection (BETR) and pool clustering (Quad).

Two backends, one interface (``fit`` on a sample, ``encode`` any texts into L2-normalised rows, so a dot product
is a cosine similarity):

- ``model: ""`` (default, ships with the project): the project's character 3-5-gram TF-IDF
  (``curation.attribution.tfidf.char_tfidf_vectorizer``) reduced by a seeded truncated SVD (LSA) to ``dim``
  dimensions. Lexical, not semantic, but needs nothing beyond scikit-learn and is deterministic.
- ``model: <name or folder>``: a sentence-transformers model that is already on this machine (loaded with
  ``local_files_only``; nothing is downloaded). Needs the optional ``sentence-transformers`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.attribution.tfidf import char_tfidf_vectorizer
from curation.errors import CurationError


@dataclass(frozen=True, kw_only=True)
class EmbeddingConfig:
    """Which embedding, and how the TF-IDF/SVD one is fitted."""

    model: str = field(
        default="", metadata={"help": "a locally available sentence-transformers model (name or folder); "
                                      "empty = the TF-IDF/SVD embedding that ships with the project"}
    )
    dim: int = field(default=128, metadata={"help": "TF-IDF/SVD: embedding dimensions"})
    fit_rows: int = field(default=5000, metadata={"help": "TF-IDF/SVD: at most this many texts fit the vocabulary"})
    min_df: int = field(default=2, metadata={"help": "TF-IDF/SVD: drop n-grams seen in fewer texts than this"})
    seed: int = field(default=0, metadata={"help": "seed of the fitting sample and the randomized SVD"})

    def __post_init__(self) -> None:
        if self.dim < 1 or self.fit_rows < 2 or self.min_df < 1:
            raise ValueError("dim and min_df must be >= 1 and fit_rows >= 2")


class TextEmbedding:
    """Fit once, then ``encode`` texts into unit-norm float32 rows ``[n, dim]``."""

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        self.config = config or EmbeddingConfig()
        self._vectorizer: Any = None
        self._svd: Any = None
        self._model: Any = None

    def fit(self, texts: Sequence[str]) -> TextEmbedding:
        """Fit the TF-IDF vocabulary and SVD on (a seeded sample of at most ``fit_rows`` of) ``texts``.

        A sentence-transformers model is loaded instead and needs no fitting."""
        if self.config.model:
            self._model = _load_sentence_model(self.config.model)
            return self
        from sklearn.decomposition import TruncatedSVD

        texts = list(texts)
        if len(texts) < 2:
            raise CurationError("text embedding: need at least 2 texts to fit the TF-IDF/SVD embedding")
        if len(texts) > self.config.fit_rows:
            keep = np.random.default_rng(self.config.seed).choice(len(texts), self.config.fit_rows, replace=False)
            texts = [texts[i] for i in np.sort(keep)]
        min_df = min(self.config.min_df, len(texts))
        self._vectorizer = char_tfidf_vectorizer(min_df=min_df)
        matrix = self._vectorizer.fit_transform(texts)
        dim = min(self.config.dim, matrix.shape[1] - 1, matrix.shape[0] - 1)
        if dim < 1:
            raise CurationError("text embedding: the fitting texts share too few character n-grams for an SVD")
        self._svd = TruncatedSVD(n_components=dim, random_state=self.config.seed).fit(matrix)
        return self

    def encode(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """Unit-norm embeddings of ``texts`` (rows in input order)."""
        if self._model is None and self._svd is None:
            raise RuntimeError("TextEmbedding.encode called before fit")
        texts = list(texts)
        if self._model is not None:
            rows = np.asarray(self._model.encode(texts, batch_size=64, show_progress_bar=False), dtype=np.float32)
        else:
            parts = [self._svd.transform(self._vectorizer.transform(texts[i : i + batch_size]))
                     for i in range(0, len(texts), batch_size)]
            rows = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self._svd.n_components))
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def _load_sentence_model(name: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise CurationError(
            f"embedding model '{name}' needs the sentence-transformers package (not installed); "
            "leave embedding.model empty to use the TF-IDF/SVD embedding"
        ) from exc
    try:
        return SentenceTransformer(name, local_files_only=True, device="cpu")
    except OSError as exc:
        raise CurationError(f"embedding model '{name}' is not available locally: {exc}".splitlines()[0]) from exc
