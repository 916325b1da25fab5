"""DSIR against ground truth: hashed features equal a direct re-statement of data-selection's featuriser, importance
weights of a hand-computable pool, the raw-fit token cap, KL reduction by hand, Parquet shards and the Ray path
give the same weights as one in-memory frame, and a planted target domain in real text is recovered."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import polars as pl
import pytest
from selection_text_data import chunked_pool

from curation.errors import CurationError, DataContractError
from curation.executors import ExecutorConfig
from curation.selection.dsir import (
    DSIRConfig,
    DSIRScorer,
    kl_divergence,
    kl_reduction,
    random_like,
    select_dsir,
)
from curation.selection.hashed_ngrams import hashed_ngrams


def _bucket(text: str, buckets: int = 10_000) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % buckets


def _reference_counts(text: str, n: int, buckets: int = 10_000) -> np.ndarray:
    """data-selection 1.0.3's get_ngram_counts, restated: wordpunct tokens of the lowercased text, every unigram
    and every space-joined 2..n-gram hashed by sha256 mod buckets."""
    words = re.findall(r"\w+|[^\w\s]+", text.lower())
    counts = np.zeros(buckets, dtype=np.int64)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[_bucket(" ".join(words[i:i + k]), buckets)] += 1
    return counts


@pytest.mark.parametrize("n", [1, 2, 3])
def test_features_equal_the_reference_featuriser(n: int) -> None:
    texts = ["The cat sat on the mat.", "", "Ünïcode ÀB ß x_y 3.14 -- ... (a,b)", "one", "A b A b a B",
             "def f(x):\n    return x**2  # square"]
    features = hashed_ngrams(pl.Series(texts), ngrams=n)
    ours = np.zeros((len(texts), 10_000), dtype=np.int64)
    np.add.at(ours, (features.doc, features.bucket.astype(np.int64)), 1)
    for row, text in enumerate(texts):
        assert np.array_equal(ours[row], _reference_counts(text, n)), text
    assert features.length.tolist() == [len(re.findall(r"\w+|[^\w\s]+", t)) for t in texts]
    assert features.length.tolist()[:5] == [7, 0, 14, 1, 6]


def _hand_pool() -> tuple[pl.DataFrame, pl.DataFrame]:
    pool = pl.DataFrame({"example_id": [f"p{i}" for i in range(6)], "text": ["a b c"] * 3 + ["x y z"] * 3})
    return pool, pl.DataFrame({"text": ["a b c a b"]})


def test_importance_weights_by_hand() -> None:
    grams = ["a", "b", "c", "a b", "b c", "c a", "x", "y", "z", "x y", "y z"]
    assert len({_bucket(g) for g in grams}) == len(grams)  # no collisions, so the hand figures hold
    pool, target = _hand_pool()
    scores = DSIRScorer(DSIRConfig(min_example_length=0)).score(pool, target)
    # raw: 30 features, each of the 10 pool n-grams 3 times -> beta = 0.1; target "a b c a b": 9 features,
    # a, b, "a b" twice and c, "b c", "c a" once
    abc = 3 * math.log(2 / 9 + 1e-8) + 2 * math.log(1 / 9 + 1e-8) - 5 * math.log(0.1 + 1e-8)
    xyz = 5 * (math.log(1e-8) - math.log(0.1 + 1e-8))
    np.testing.assert_allclose(scores["score"].to_numpy(), [abc] * 3 + [xyz] * 3, rtol=1e-12)
    assert scores["length"].to_list() == [3] * 6 and scores["eligible"].all()
    assert not DSIRScorer(DSIRConfig(min_example_length=4)).score(pool, target)["eligible"].any()


def test_laplace_smoothing_and_the_raw_fit_cap() -> None:
    pool, target = _hand_pool()
    smoothed = DSIRScorer(DSIRConfig(min_example_length=0, target_laplace=1.0)).score(pool, target)
    # target counts + 1 in each of 10,000 buckets: 10,009 pseudo-features; x has count 1
    xyz = 5 * (math.log(1 / 10_009 + 1e-8) - math.log(0.1 + 1e-8))
    assert smoothed["score"][5] == pytest.approx(xyz, rel=1e-12)
    # cap 5: the first document (5 features) does not exceed it, the second does and is the last one fitted ->
    # beta = 0.2 on a, b, c, "a b", "b c"; x y z are unseen (beta = 0)
    capped = DSIRScorer(DSIRConfig(min_example_length=0, fit_tokens=5, shard_rows=1)).score(pool, target)
    abc = 3 * math.log(2 / 9 + 1e-8) + 2 * math.log(1 / 9 + 1e-8) - 5 * math.log(0.2 + 1e-8)
    assert capped["score"][0] == pytest.approx(abc, rel=1e-12)
    assert capped["score"][5] == pytest.approx(0.0, abs=1e-9)


def test_kl_reduction_by_hand() -> None:
    target, pool = np.array([3, 1, 0]), np.array([1, 1, 2])
    # q gets one pseudo-count per bucket: (2, 2, 3) / 7
    assert kl_divergence(target, pool) == pytest.approx(0.75 * math.log(0.75 / (2 / 7)) + 0.25 * math.log(
        0.25 / (2 / 7)), rel=1e-12)
    on_target = 0.75 * math.log(0.75 / (4 / 7)) + 0.25 * math.log(0.25 / (2 / 7))  # q = (4, 2, 1) / 7
    assert kl_reduction(target, pool, np.array([3, 1, 0])) == pytest.approx(
        kl_divergence(target, pool) - on_target, rel=1e-12)
    pool_frame, target_frame = _hand_pool()
    result = select_dsir(pool_frame, target_frame, 1, method="topk", dsir=DSIRConfig(min_example_length=0))
    assert result.selection.filter("keep")["example_id"].to_list() == ["p0"]
    grams = ["a", "b", "c", "a b", "b c", "c a", "x", "y", "z", "x y", "y z"]  # distinct buckets (checked above)

    def counts(values: list[int]) -> np.ndarray:
        out = np.zeros(10_000)
        out[[_bucket(g) for g in grams]] = values
        return out

    target_counts, abc, xyz = (counts([2, 2, 1, 2, 1, 1, 0, 0, 0, 0, 0]), counts([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]),
                               counts([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]))
    baseline_row = int(np.flatnonzero(random_like(result.selection["keep"].to_numpy()))[0])  # one random row
    expected = kl_divergence(target_counts, abc if baseline_row < 3 else xyz) - kl_divergence(target_counts, abc)
    assert result.kl_reduction == pytest.approx(expected, rel=1e-6)


def test_planted_target_domain_is_recovered() -> None:
    pool, target = chunked_pool()  # 60 chunks of each of 4 domains; target = 20 other legal chunks
    for seed in range(3):
        result = select_dsir(pool, target, 30, seed=seed)
        # measured over seeds 0-19: precision 1.0 every time (log-weight gaps of hundreds of nats dwarf the
        # Gumbel noise); at k = 60 (all legal chunks) it is 0.72, as some contract chunks are boilerplate tables
        assert result.kept["domain"].eq("legal").mean() >= 0.9
        assert result.figures["kept"] == 30
        assert result.kl_reduction > 0.1  # 0.272 at every seed 0-19 (against a random 30 chunks, seed 0)


def test_parquet_shards_and_ray_give_the_weights_of_one_frame(tmp_path) -> None:
    pool, target = chunked_pool(rows_per_domain=15)
    folder = tmp_path / "pool"
    folder.mkdir()
    pool.head(25).write_parquet(folder / "a.parquet", row_group_size=7)
    pool.slice(25).write_parquet(folder / "b.parquet", row_group_size=7)
    target.write_parquet(tmp_path / "target.parquet")
    expected = DSIRScorer().score(pool, target)
    sharded = DSIRScorer(DSIRConfig(shard_rows=10)).score(folder, tmp_path / "target.parquet")
    assert sharded["example_id"].equals(expected["example_id"])
    np.testing.assert_array_equal(sharded["score"].to_numpy(), expected["score"].to_numpy())
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray = DSIRScorer(DSIRConfig(shard_rows=10, executor=ExecutorConfig(kind="ray"))).score(
            [folder / "a.parquet", folder / "b.parquet"], target)
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(on_ray["score"].to_numpy(), expected["score"].to_numpy())


@pytest.mark.parametrize(("pool", "target", "message"), [
    (pl.DataFrame({"example_id": [], "text": []}, schema={"example_id": pl.Utf8, "text": pl.Utf8}),
     pl.DataFrame({"text": ["a"]}), "the pool is empty"),
    (pl.DataFrame({"example_id": ["a"], "body": ["x"]}), pl.DataFrame({"text": ["a"]}),
     "pool table: missing column 'text'"),
    (pl.DataFrame({"example_id": ["a"], "text": ["x"]}), pl.DataFrame({"text": ["", "  "]}),
     "the target has no tokens"),
    (pl.DataFrame({"example_id": ["a", "a"], "text": ["x", "y"]}), pl.DataFrame({"text": ["a"]}),
     "pool row 1: duplicate example_id 'a'"),
    ("/no/such/pool.parquet", pl.DataFrame({"text": ["a"]}), "file not found"),
])
def test_bad_input_is_a_one_line_error(pool, target, message) -> None:
    with pytest.raises(DataContractError, match=message) as err:
        DSIRScorer(DSIRConfig(min_example_length=0)).score(pool, target)
    assert "\n" not in str(err.value)


def test_budget_beyond_the_eligible_pool_is_an_error() -> None:
    pool, target = _hand_pool()
    with pytest.raises(CurationError, match="budget of 3 rows exceeds the 0 eligible rows"):
        select_dsir(pool, target, 3)  # every text is shorter than min_example_length 100


def test_a_64_bit_hash_collision_never_merges_two_tokens(monkeypatch) -> None:
    texts = pl.Series(["the cat sat", "a dog ran the cat"])
    expected = hashed_ngrams(texts)
    monkeypatch.setattr(pl.Series, "hash", lambda self, seed=0: pl.Series(np.zeros(len(self), dtype=np.uint64)))
    collided = hashed_ngrams(texts)  # every token hashes alike: grouping must fall back to the strings
    np.testing.assert_array_equal(np.sort(collided.bucket), np.sort(expected.bucket))
    np.testing.assert_array_equal(np.bincount(collided.doc), np.bincount(expected.doc))
