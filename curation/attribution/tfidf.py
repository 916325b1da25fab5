"""TF-IDF pre-filtering of candidate training examples for text queries (as in Grosse et al. 2023).

Scoring every training sequence against every query is the expensive part of influence on LMs; the EK-FAC paper
scores only the training sequences most similar to the query by TF-IDF. This biases results towards lexical
overlap (documented in the methods spec), so it is opt-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.errors import DataContractError

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer


def char_tfidf_vectorizer(min_df: int = 1) -> TfidfVectorizer:
    """The project's TF-IDF text representation: sublinear character 3-5-grams within word boundaries.

    Shared by the candidate pre-filter below and the TF-IDF/SVD text embedding of data selection
    (``curation.selection.embedding``), so both see the same lexical features.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=min_df)


def tfidf_candidates(train: pl.DataFrame, queries: pl.DataFrame, top_n: int) -> np.ndarray:
    """Boolean mask ``[n_train, n_query]``: the ``top_n`` training rows most TF-IDF-similar to each query."""
    for name, frame in (("train", train), ("queries", queries)):
        if "text" not in frame.columns:
            raise DataContractError(f"{name} table: TF-IDF pre-filtering needs a 'text' column")
    vectorizer = char_tfidf_vectorizer()
    train_vec = vectorizer.fit_transform(train["text"].fill_null("").to_list())
    query_vec = vectorizer.transform(queries["text"].fill_null("").to_list())
    sim = (train_vec @ query_vec.T).toarray()  # rows are L2-normalised: cosine similarity
    k = min(top_n, train.height)
    top = np.argpartition(-sim, k - 1, axis=0)[:k]
    mask = np.zeros(sim.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=0)
    return mask
