"""Okapi BM25, Lucene variant: the project's one BM25, used by the ``bm25`` selection method and by the
estimator-trust baseline of the influence report.

For documents ``d`` and a query ``q`` (its *distinct* tokens)::

    score(d, q) = sum_{t in q} idf(t) * tf / (tf + k1 (1 - b + b |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          (never negative)

with ``tf`` the count of ``t`` in ``d``, ``|d|`` the token count of ``d`` after stop-word removal and ``avgdl`` the
mean of ``|d|`` over the ``N`` documents. This is the "lucene" method of the ``bm25s`` package (no ``(k1 + 1)``
numerator factor, which would only rescale every score), and tokens are made as ``bm25s.tokenize`` makes them:
lower-cased, split with a regular expression (default scikit-learn's ``(?u)\\b\\w\\w+\\b``, words of 2+ characters),
stop words dropped. tests/unit/text/test_bm25.py checks the scores against bm25s on real passages.

The document-term matrix is sparse (scipy), so a large vocabulary costs only its non-zeros; all queries are scored
with one sparse product.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np
from scipy import sparse

WORDS_2PLUS = r"(?u)\b\w\w+\b"  # scikit-learn's CountVectorizer pattern, bm25s' default
WORDS = r"\w+"  # every run of word characters, single letters included

# Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET), which bm25s uses for stopwords="en".
ENGLISH_STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with",
))


def tokenize(text: str | None, *, pattern: str = WORDS_2PLUS, stopwords: Collection[str] = ()) -> list[str]:
    """Lower-cased tokens of ``text`` matching ``pattern``, without ``stopwords`` (``None`` is the empty text)."""
    return [t for t in re.findall(pattern, (text or "").lower()) if t not in stopwords]


def bm25_scores(docs: Sequence[str | None], queries: Sequence[str | None], *, k1: float = 1.5, b: float = 0.75,
                pattern: str = WORDS_2PLUS, stopwords: Collection[str] = ()) -> np.ndarray:
    """``[len(docs), len(queries)]`` float64 BM25 score of every document for every query (module docstring);
    a query with no token in the documents' vocabulary scores 0 everywhere."""
    if k1 < 0 or not 0 <= b <= 1:
        raise ValueError(f"BM25 needs k1 >= 0 and b in [0, 1], got k1={k1}, b={b}")
    stop = frozenset(stopwords)
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, doc in enumerate(docs):
        for token in tokenize(doc, pattern=pattern, stopwords=stop):
            rows.append(i)
            cols.append(vocab.setdefault(token, len(vocab)))
    n = len(docs)
    tf = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, max(len(vocab), 1)))
    tf.sum_duplicates()  # counts per (document, token)
    df = np.bincount(tf.indices, minlength=tf.shape[1])
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    norm = 1 - b + b * lengths / max(float(lengths.mean()) if n else 0.0, 1e-12)
    row_of = np.repeat(np.arange(n), np.diff(tf.indptr))
    weighted = tf.copy()
    weighted.data = tf.data / (tf.data + k1 * norm[row_of]) * idf[tf.indices]
    q_rows, q_cols = [], []
    for j, query in enumerate(queries):
        known = {vocab[t] for t in tokenize(query, pattern=pattern, stopwords=stop) if t in vocab}
        q_rows += sorted(known)
        q_cols += [j] * len(known)
    chosen = sparse.csr_matrix((np.ones(len(q_rows)), (q_rows, q_cols)), shape=(tf.shape[1], len(queries)))
    return np.asarray((weighted @ chosen).toarray(), dtype=np.float64)
