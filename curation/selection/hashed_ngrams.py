"""Hashed n-gram features of texts (DSIR's feature space), vectorised over a whole batch of documents.

Each text is lowercased and split with the ``wordpunct`` pattern ``\\w+|[^\\w\\s]+`` (NLTK's WordPunctTokenizer);
every unigram and every run of up to ``ngrams`` consecutive tokens (joined by one space) is hashed into
``sha256(utf-8) mod num_buckets``. These are the features of data-selection 1.0.3 (``hash_buckets``,
``get_ngram_counts``), so weights computed here equal the reference implementation's.

Speed comes from hashing each *distinct* n-gram once per batch instead of once per occurrence: tokens are
tokenised by polars, grouped by a 64-bit hash (checked against the text, so a collision can never merge two
tokens), n-grams are grouped as integer pairs with numpy, and only the distinct strings go through sha256. The
result is one bucket per n-gram occurrence with the index of its document: per-document sums
(``np.bincount(doc, weights[bucket])``) and per-bucket counts are then single vectorised calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

WORDPUNCT = r"\w+|[^\w\s]+"


@dataclass(frozen=True)
class HashedNgrams:
    """One batch's features: ``bucket[i]`` of the i-th n-gram occurrence, in document ``doc[i]``;
    ``length[d]`` = number of tokens of document ``d``."""

    bucket: np.ndarray
    doc: np.ndarray
    length: np.ndarray

    def counts(self, num_buckets: int, docs: np.ndarray | None = None) -> np.ndarray:
        """Bucket counts summed over all documents, or over the documents where ``docs`` (bool, per doc) is set."""
        bucket = self.bucket if docs is None else self.bucket[docs[self.doc]]
        return np.bincount(bucket, minlength=num_buckets).astype(np.int64)

    def doc_sums(self, weights: np.ndarray) -> np.ndarray:
        """``sum_j c_j(x) * weights[j]`` for every document ``x`` (float64)."""
        return np.bincount(self.doc, weights=weights[self.bucket], minlength=len(self.length))


def sha256_bucket(texts: list[str], num_buckets: int) -> np.ndarray:
    """``int(sha256(text).hexdigest(), 16) % num_buckets`` for each text."""
    sha = hashlib.sha256
    return np.fromiter((int.from_bytes(sha(t.encode("utf-8")).digest(), "big") % num_buckets for t in texts),
                       dtype=np.int64, count=len(texts))


def hashed_ngrams(texts: pl.Series, *, ngrams: int = 2, num_buckets: int = 10_000) -> HashedNgrams:
    """Features of every text in ``texts`` (nulls count as empty texts)."""
    tokens = texts.fill_null("").str.to_lowercase().str.extract_all(WORDPUNCT)
    length = tokens.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = tokens.explode().drop_nulls()
    doc = np.repeat(np.arange(len(length), dtype=np.int64), length)
    if len(flat) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return HashedNgrams(empty, empty, length)
    token_id, words = _distinct(flat)
    word_bucket = sha256_bucket(words.to_list(), num_buckets)
    buckets, docs = [word_bucket[token_id]], [doc]
    gram_id, gram_text = token_id, words
    for n in range(2, ngrams + 1):
        # an n-gram starts at position i when tokens i .. i+n-1 lie in the same document
        start = np.flatnonzero(doc[n - 1:] == doc[: len(doc) - n + 1])
        if start.size == 0:
            break
        key = gram_id[start] * np.int64(len(words)) + token_id[start + n - 1]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        prefix = gram_text.gather(pl.Series(gram_id[start[first]]))
        last = words.gather(pl.Series(token_id[start[first] + n - 1]))
        gram_text = pl.DataFrame({"a": prefix, "b": last}).select(pl.concat_str("a", "b", separator=" "))["a"]
        gram_id = np.full(len(doc), -1, dtype=np.int64)
        gram_id[start] = inverse.reshape(-1)
        buckets.append(sha256_bucket(gram_text.to_list(), num_buckets)[inverse.reshape(-1)])
        docs.append(doc[start])
    dtype = np.uint16 if num_buckets <= np.iinfo(np.uint16).max + 1 else np.int64
    return HashedNgrams(np.concatenate(buckets).astype(dtype), np.concatenate(docs).astype(np.int32), length)


def _distinct(flat: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Dense ids of the distinct strings in ``flat`` and the strings themselves (id order)."""
    hashes = flat.hash(seed=0).to_numpy()
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    words = flat.gather(pl.Series(first))
    if not (words.gather(pl.Series(inverse)) == flat).all():  # a 64-bit collision: group by the strings instead
        frame = pl.DataFrame({"t": flat})
        distinct = frame.unique(maintain_order=True).with_row_index("id")
        inverse = frame.join(distinct, on="t", how="left", maintain_order="left")["id"].to_numpy()
        words = distinct["t"]
    return inverse.astype(np.int64), words
