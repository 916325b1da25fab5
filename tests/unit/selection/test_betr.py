"""BETR and the BM25 baseline against ground truth: BM25 scores equal the Lucene formula computed by hand; on a
pool of real multi-domain passages with one planted target domain, both rank that domain's passages far above its
pool share, and the Selector keeps them."""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curation.errors import CurationError, DataContractError
from curation.issue_tables import check_issue_table
from curation.selection.betr import BETRConfig, BETRScorer, target_similarity
from curation.selection.bm25 import BM25Config, BM25Scorer, bm25_relevance
from curation.selection.embedding import EmbeddingConfig, TextEmbedding
from curation.selection.selector import Selector, SelectorConfig

DOMAINS = ("books", "code", "government", "legal", "news", "wiki")


def planted_pool(shared: Path, seed: int, per_domain: int = 100, n_target: int = 40, target: str = "wiki",
                 chars: int = 256) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``per_domain`` passages of each domain (pool) and ``n_target`` passages of ``target`` from documents the
    pool does not use (split by doc_id hash), drawn with ``seed``."""
    corpus = pl.read_parquet(shared / "multidomain_corpus" / "corpus.parquet", columns=["doc_id", "domain", "text"])
    rows = []
    for doc_id, domain, text in corpus.iter_rows():
        held = int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 5 == 0
        rows += [(f"{doc_id}#{k}", domain, text[k : k + chars], held) for k in range(0, len(text) - chars + 1, chars)]
    frame = pl.DataFrame(rows, schema=["example_id", "domain", "text", "held"], orient="row")
    pool = pl.concat([frame.filter((pl.col("domain") == d) & ~pl.col("held")).sample(per_domain, seed=seed)
                      for d in DOMAINS]).sample(fraction=1.0, shuffle=True, seed=seed)
    target_rows = frame.filter((pl.col("domain") == target) & pl.col("held")).sample(n_target, seed=seed)
    return pool.drop("held"), target_rows.drop("held")


def precision_at_share(result, pool: pl.DataFrame, target: str = "wiki") -> float:
    """Share of ``target`` passages among the pool's top-``n_target_in_pool`` rows by selection score."""
    is_target = (pool["domain"] == target).to_numpy()
    top = np.argsort(-result.scores["score"].to_numpy(), kind="stable")[: is_target.sum()]
    return float(is_target[top].mean())


def test_bm25_matches_the_lucene_formula_by_hand() -> None:
    docs = ["the cat sat on the mat", "dogs chase cats", "a cat and a cat", "quantum physics lecture"]
    tokens = [[w for w in d.split() if len(w) > 1] for d in docs]  # bm25s keeps words of 2+ characters
    avgdl, n, k1, b = sum(map(len, tokens)) / 4, 4, 1.5, 0.75

    def by_hand(query: str, doc: list[str]) -> float:
        total = 0.0
        for word in set(query.split()):
            df = sum(word in t for t in tokens)
            tf = doc.count(word)
            total += math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        return total

    queries = ["cat mat cat", "physics"]  # a repeated query word counts once
    expected = [[by_hand(q, t) for t in tokens] for q in queries]
    np.testing.assert_allclose(bm25_relevance(docs, queries, BM25Config(stopwords="")), expected, rtol=1e-6)
    pool = pl.DataFrame({"example_id": list("abcd"), "text": docs})
    result = BM25Scorer(BM25Config(stopwords="", top_k=1)).score(pool, pl.DataFrame({"text": queries}))
    np.testing.assert_allclose(result.scores["score"], np.max(expected, axis=0), rtol=1e-6)
    check_issue_table(result.issues, "off_target")
    np.testing.assert_allclose(result.issues["off_target_score"], -result.scores["score"])


def test_target_similarity_is_the_mean_of_the_top_k_cosines() -> None:
    pool = np.array([[1.0, 0.0], [0.0, 1.0]])
    targets = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    np.testing.assert_allclose(target_similarity(pool, targets, 2), [(1.0 + 0.6) / 2, (1.0 + 0.8) / 2])
    np.testing.assert_allclose(target_similarity(pool, targets, 1), [1.0, 1.0])


def test_tfidf_svd_embedding_is_unit_norm_and_deterministic() -> None:
    texts = ["the cat sat", "the cat ran", "stock markets fell", "markets rose sharply", "a cat and a dog"]
    one = TextEmbedding(EmbeddingConfig(dim=3, min_df=1)).fit(texts).encode(texts)
    two = TextEmbedding(EmbeddingConfig(dim=3, min_df=1)).fit(texts).encode(texts)
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(one, two)
    assert one[0] @ one[1] > one[0] @ one[2]  # shared character n-grams -> closer


# Share of wiki passages among the top 100 of a 600-passage pool (100 per domain, random = 0.167), seeds 0-19
# (measured 2026-12-06 with planted_results): BETR (classifier) min 0.50 mean 0.64; similarity only min 0.56 mean
# 0.64; BM25 min 0.28 mean 0.37. Each floor sits below every seed's value and well above random.
FLOORS = {"betr": 0.45, "betr_similarity": 0.5, "bm25": 0.25}


def planted_results(shared: Path, seed: int) -> tuple[pl.DataFrame, dict]:
    pool, target = planted_pool(shared, seed)
    embedding = EmbeddingConfig(dim=64, seed=seed)
    return pool, {
        "betr": BETRScorer(BETRConfig(embedding=embedding, sample_size=400, positive_fraction=0.2, seed=seed))
        .score(pool, target),
        "betr_similarity": BETRScorer(BETRConfig(embedding=embedding, classifier="none", seed=seed))
        .score(pool, target),
        "bm25": BM25Scorer(BM25Config(seed=seed)).score(pool, target),
    }


def test_planted_target_domain_is_recovered(shared_data: Path) -> None:
    pool, results = planted_results(shared_data, seed=0)
    for name, result in results.items():
        check_issue_table(result.issues, "off_target")
        assert precision_at_share(result, pool) > FLOORS[name], (name, precision_at_share(result, pool))
    kept = Selector(SelectorConfig(budget="count", value=100, method="topk")).select(
        results["betr"].scores.with_columns(pool["text"]))
    kept_domains = pool.filter(kept["keep"])["domain"]
    assert (kept_domains == "wiki").mean() > FLOORS["betr"]


def test_bad_tables_are_refused() -> None:
    pool = pl.DataFrame({"example_id": [1, 1], "text": ["a b", "c d"]})
    with pytest.raises(DataContractError, match="row 1: duplicate example_id 1"):
        BM25Scorer().score(pool, pl.DataFrame({"text": ["a"]}))
    with pytest.raises(DataContractError, match="betr target table: missing column 'text'"):
        BETRScorer().score(pool, pl.DataFrame({"body": ["a"]}))


def test_a_sentence_transformers_model_without_the_package_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails as if absent
    with pytest.raises(CurationError, match="needs the sentence-transformers package") as err:
        TextEmbedding(EmbeddingConfig(model="all-MiniLM-L6-v2")).fit(["a", "b"])
    assert "\n" not in str(err.value)
