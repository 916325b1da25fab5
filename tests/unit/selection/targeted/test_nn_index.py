"""Gradient nearest-neighbour index against brute force: exact neighbours for flat, the checkpoint-weighted cosine
identity, planted near-duplicates recovered by ivf, store round trip and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from curation.errors import CurationError
from curation.gradients.nn_index import GradientNNIndex, NNIndexConfig, combine_checkpoints
from curation.gradients.store import GradientStore


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_flat_search_equals_brute_force(metric: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 24)).astype(np.float32)
    q = rng.normal(size=(7, 24)).astype(np.float32)
    idx, scores = GradientNNIndex(x, NNIndexConfig(metric=metric)).search(q, 5)
    if metric == "cosine":
        full = _unit(q) @ _unit(x).T
    elif metric == "ip":
        full = q @ x.T
    else:
        full = -((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-4, atol=1e-4)


def test_combined_checkpoints_give_the_weighted_cosine() -> None:
    rng = np.random.default_rng(2)
    train = [rng.normal(size=(50, 8)) for _ in range(3)]
    query = [rng.normal(size=(4, 8)) for _ in range(3)]
    w = [0.5, 0.3, 0.2]
    lhs = combine_checkpoints(query, w) @ combine_checkpoints(train, w).T
    rhs = sum(wk * (_unit(q) @ _unit(t).T) for wk, q, t in zip(w, query, train, strict=True))
    np.testing.assert_allclose(lhs, rhs, atol=1e-5)
    # the weighted score is what the index returns
    index = GradientNNIndex(combine_checkpoints(train, w))
    idx, scores = index.search(combine_checkpoints(query, w), 3)
    np.testing.assert_array_equal(idx, np.argsort(-rhs, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(scores, np.sort(rhs, axis=1)[:, ::-1][:, :3], atol=1e-5)


def test_ivf_recovers_planted_neighbours() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    planted = rng.choice(5000, size=50, replace=False)
    queries = x[planted] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    index = GradientNNIndex(x, NNIndexConfig(kind="ivf", nprobe=8))
    idx, _ = index.search(queries, 1)
    # a planted near-copy sits in the query's own cell, so recall@1 is exact
    np.testing.assert_array_equal(idx[:, 0], planted)


def test_from_store_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    store = GradientStore(tmp_path / "store", {"adapter": "x"}, n_rows=40, dim=6)
    feats = {c: rng.normal(size=(40, 6)).astype(np.float32) for c in ("a", "b")}
    for c, f in feats.items():
        store.write(c, 0, f, np.zeros(40))
    index = GradientNNIndex.from_store(store, ["a", "b"], [2.0, 1.0])
    q = combine_checkpoints([feats["a"][:3], feats["b"][:3]], [2.0, 1.0])
    idx, scores = index.search(q, 1)
    np.testing.assert_array_equal(idx[:, 0], [0, 1, 2])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    loaded = GradientNNIndex.load(index.save(tmp_path / "index"))
    np.testing.assert_array_equal(loaded.search(q, 4)[0], index.search(q, 4)[0])


def test_bad_queries_are_one_line_errors() -> None:
    index = GradientNNIndex(np.eye(4, dtype=np.float32))
    with pytest.raises(CurationError, match="queries have width 3, the index holds width 4"):
        index.search(np.ones((1, 3)), 1)
    with pytest.raises(CurationError, match=r"k=5 must lie in \[1, 4\]"):
        index.search(np.ones((1, 4)), 5)
    with pytest.raises(CurationError, match="finite non-empty"):
        GradientNNIndex(np.array([[np.nan, 1.0]]))
