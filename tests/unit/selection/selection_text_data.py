"""Real text for the selection tests: equal-length chunks of four multidomain_corpus domains, with held-out
``legal`` chunks as the target (a planted domain of known share). Skips when the shared data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

SHARED = Path(os.environ.get("CURATION_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))
CORPUS = SHARED / "multidomain_corpus" / "corpus.parquet"
DOMAINS = ("government", "legal", "news", "wiki")


def chunked_pool(rows_per_domain: int = 60, words: int = 120) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(pool, target)``: pool = ``rows_per_domain`` chunks of ``words`` words per domain (``example_id, domain,
    text``); target = 20 further ``legal`` chunks (``text``)."""
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} not found (set CURATION_SHARED_DATA)")
    corpus = pl.read_parquet(CORPUS, columns=["doc_id", "domain", "text"]).sort("doc_id")
    rows = []
    for domain in DOMAINS:
        tokens = " ".join(corpus.filter(pl.col("domain") == domain)["text"].head(400).to_list()).split()
        for n in range(rows_per_domain + 20):
            rows.append((f"{domain}/{n}", domain, " ".join(tokens[n * words:(n + 1) * words]), n >= rows_per_domain))
    chunks = pl.DataFrame(rows, schema=["example_id", "domain", "text", "held_out"], orient="row")
    pool = chunks.filter(~pl.col("held_out")).drop("held_out")
    return pool, chunks.filter(pl.col("held_out") & (pl.col("domain") == "legal")).select("text")
