"""The project's BM25 (curation.text.bm25) against ground truth: the Lucene formula by hand, and the reference
library bm25s (method="lucene") on real multi-domain passages, with the selection method's tokenization (words of
2+ characters, English stop words) and the estimator-trust one (every ``\\w+`` run, no stop words)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curation.text.bm25 import ENGLISH_STOP_WORDS, WORDS, WORDS_2PLUS, bm25_scores, tokenize


def test_bm25_by_hand() -> None:
    # N = 3, df(a) = 2 -> idf = ln(1 + 1.5 / 2.5) = ln 1.6; lengths 2, 3, 1 -> avgdl 2; k1 = 1.5, b = 0.75.
    # doc 0: tf 1, 1 - b + b * 2/2 = 1     -> 1 / (1 + 1.5)         = 1 / 2.5
    # doc 1: tf 2, 1 - b + b * 3/2 = 1.375 -> 2 / (2 + 1.5 * 1.375) = 2 / 4.0625
    scores = bm25_scores(["a b", "A a c", "d"], ["a", "a a", "zzz"], pattern=WORDS)
    idf = math.log(1.6)
    np.testing.assert_allclose(scores[:, 0], [idf / 2.5, idf * 2 / 4.0625, 0.0])
    np.testing.assert_allclose(scores[:, 1], scores[:, 0])  # a query's distinct words
    np.testing.assert_allclose(scores[:, 2], 0.0)  # no known word


def test_tokenize_and_stop_words() -> None:
    assert tokenize("It's a Test_1!", pattern=WORDS) == ["it", "s", "a", "test_1"]
    assert tokenize("It's a Test_1!") == ["it", "test_1"]  # default: words of 2+ characters
    assert tokenize("The cat IS on the mat", stopwords=ENGLISH_STOP_WORDS) == ["cat", "mat"]
    assert tokenize(None) == []
    # a stop word neither counts in a document's length nor scores as a query word
    with_stop = bm25_scores(["the cat", "dog"], ["the cat", "the"], stopwords=ENGLISH_STOP_WORDS)
    np.testing.assert_allclose(with_stop, bm25_scores(["cat", "dog"], ["cat", ""]))
    np.testing.assert_allclose(with_stop[:, 1], 0.0)


def passages(shared: Path, n: int, seed: int, chars: int = 400) -> list[str]:
    """``n`` leading ``chars``-character passages of distinct documents of the multi-domain corpus."""
    corpus = pl.read_parquet(shared / "multidomain_corpus" / "corpus.parquet", columns=["text"])
    return corpus.sample(n, seed=seed)["text"].str.slice(0, chars).to_list()


@pytest.mark.parametrize(("pattern", "stopwords"), [(WORDS_2PLUS, "en"), (WORDS, None)],
                         ids=["selection-tokens", "trust-tokens"])
def test_matches_bm25s_lucene_on_real_passages(shared_data: Path, pattern: str, stopwords: str | None) -> None:
    """Every score of 300 passages for 40 queries (from other documents) equals bm25s' in float64: the same
    formula and tokens. (In bm25s' default float32 the largest relative gap is ~1e-7, its rounding.)"""
    bm25s = pytest.importorskip("bm25s")
    texts = passages(shared_data, 340, seed=0)
    docs, queries = texts[:300], texts[300:]
    ours = bm25_scores(docs, queries, k1=1.2, b=0.6, pattern=pattern,
                       stopwords=ENGLISH_STOP_WORDS if stopwords else ())

    def tokens(batch: list[str]) -> list[list[str]]:
        return bm25s.tokenize(batch, token_pattern=pattern, stopwords=stopwords, return_ids=False,
                              show_progress=False)

    retriever = bm25s.BM25(k1=1.2, b=0.6, method="lucene", dtype="float64")
    retriever.index(tokens(docs), show_progress=False)
    expected = np.zeros_like(ours)
    for j, words in enumerate(tokens(queries)):
        known = sorted({w for w in words if w in retriever.vocab_dict})
        if known:  # bm25s cannot score an empty query; ours gives 0
            expected[:, j] = retriever.get_scores(known)
    assert (expected > 0).any(axis=0).all()  # every query matched something: a real comparison
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=0)
