"""EK-FAC against ground truth it must reproduce exactly.

1. When the Fisher really is a Kronecker product (every training input identical, empirical Fisher), EK-FAC's
   ``(F + λI)⁻¹`` is exact: scores equal the explicit damped inverse of ``GᵀG / n``.
2. With overwhelming damping ``(F + λI)⁻¹ → I/λ``, so ``λ·score`` equals the plain dot product of per-example
   gradients (from ``torch.func``) over the tracked Linear layers: this checks the activation/output-gradient
   capture, bias handling, and the sum over tokens with padding for a sequence model.
3. Low-rank query batching at full rank equals the dense path; TF-IDF pre-filtering scores exactly the candidates.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.ekfac import EKFACConfig, EKFACInfluence
from curation.errors import CurationError
from curation.gradients import per_example_gradients
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig


def _frame(x: np.ndarray, y: np.ndarray, prefix: str) -> pl.DataFrame:
    return pl.DataFrame({"example_id": [f"{prefix}{i}" for i in range(len(y))], "features": x.tolist(), "label": y})


def _context(adapter, model, train: pl.DataFrame, queries: pl.DataFrame, batch_size: int = 16) -> ScoringContext:
    return ScoringContext(adapter=adapter, checkpoints=(CheckpointModel(model=model),), train=train,
                          queries=queries, batch_size=batch_size)


def test_ekfac_is_exact_for_a_kronecker_fisher():
    rng = np.random.default_rng(1)
    n, d, k, lam = 40, 6, 4, 0.03
    x = np.repeat(rng.normal(size=(1, d)), n, axis=0)  # identical inputs: F = E[s sᵀ] ⊗ a aᵀ exactly
    y = rng.integers(0, k, size=n)
    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=d, n_classes=k, dtype="float64"))
    torch.manual_seed(0)
    model = adapter.build_model()
    queries = _frame(rng.normal(size=(3, d)), rng.integers(0, k, size=3), "q")
    ctx = _context(adapter, model, _frame(x, y, "t"), queries)
    result = EKFACInfluence(EKFACConfig(damping=lam, fisher="empirical")).score(ctx)
    g = per_example_gradients(adapter, model, adapter.collate(ctx.train)).numpy()
    gq = per_example_gradients(adapter, model, adapter.collate(queries), target="measurement").numpy()
    inv = np.linalg.inv(g.T @ g / n + lam * np.eye(g.shape[1]))
    np.testing.assert_allclose(result.matrix, g @ inv @ gq.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.self_influence, np.einsum("ip,pq,iq->i", g, inv, g), rtol=1e-8)


def _gradient_dot_check(adapter, model, train, queries, rtol):
    lam = 1e9
    result = EKFACInfluence(EKFACConfig(damping=lam)).score(_context(adapter, model, train, queries, batch_size=5))
    modules = adapter.tracked_modules(model)
    g = per_example_gradients(adapter, model, adapter.collate(train), modules=modules).double()
    gq = per_example_gradients(adapter, model, adapter.collate(queries), modules=modules,
                               target="measurement").double()
    want = (g @ gq.T).detach().numpy()
    np.testing.assert_allclose(result.matrix * lam, want, rtol=rtol, atol=rtol * np.abs(want).max())
    np.testing.assert_allclose(result.self_influence * lam, (g * g).sum(1).detach().numpy(), rtol=rtol)


def test_ekfac_with_large_damping_is_gradient_dot_product_mlp():
    rng = np.random.default_rng(2)
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=8, n_classes=3, hidden=(16, 12)))
    torch.manual_seed(0)
    model = adapter.build_model()
    train = _frame(rng.normal(size=(23, 8)), rng.integers(0, 3, size=23), "t")
    queries = _frame(rng.normal(size=(4, 8)), rng.integers(0, 3, size=4), "q")
    _gradient_dot_check(adapter, model, train, queries, rtol=1e-4)


def test_ekfac_with_large_damping_is_gradient_dot_product_sequences():
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=24))
    torch.manual_seed(0)
    model = adapter.build_model()
    texts = ["def f(x): return x", "import os", "the quick brown fox jumps", "MIT License", "a", "class A: pass",
             "Permission is hereby granted"]
    train = pl.DataFrame({"example_id": [f"t{i}" for i in range(len(texts))], "text": texts})
    queries = pl.DataFrame({"example_id": ["q0", "q1"], "text": ["def g(y): return y", "License granted"]})
    _gradient_dot_check(adapter, model, train, queries, rtol=2e-3)


def _digits_like(seed: int):
    rng = np.random.default_rng(seed)
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=10, n_classes=4, hidden=(12,)))
    torch.manual_seed(seed)
    model = adapter.build_model()
    train = _frame(rng.normal(size=(50, 10)), rng.integers(0, 4, size=50), "t")
    queries = _frame(rng.normal(size=(6, 10)), rng.integers(0, 4, size=6), "q")
    return _context(adapter, model, train, queries)


def test_low_rank_queries_at_full_rank_equal_dense_and_degrade_gracefully():
    ctx = _digits_like(3)
    scorer = EKFACInfluence(EKFACConfig())
    factors = scorer.fit(ctx)
    dense = scorer.score(ctx, factors)
    full = EKFACInfluence(EKFACConfig(query_rank=11)).score(ctx, factors)  # first layer: factorised at full rank 11
    np.testing.assert_allclose(full.matrix, dense.matrix, rtol=1e-4, atol=1e-5 * np.abs(dense.matrix).max())
    low = EKFACInfluence(EKFACConfig(query_rank=2)).score(ctx, factors)
    corr = np.corrcoef(low.matrix.ravel(), dense.matrix.ravel())[0, 1]
    assert 0.5 < corr < 1.0 - 1e-9  # an approximation: correlated, not identical
    np.testing.assert_allclose(low.self_influence, dense.self_influence, rtol=1e-6)


def test_heuristic_damping_is_a_tenth_of_the_mean_eigenvalue():
    ctx = _digits_like(4)
    scorer = EKFACInfluence(EKFACConfig())
    factors = scorer.fit(ctx)
    result = scorer.score(ctx, factors)
    for name, layer in factors.layers.items():
        assert result.extras["damping"][name] == pytest.approx(0.1 * float(layer.eigenvalues.mean()))
        assert float(layer.eigenvalues.min()) >= 0


def test_tfidf_prefilter_scores_only_candidates():
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=32))
    torch.manual_seed(0)
    model = adapter.build_model()
    texts = ["def add(a, b): return a + b", "def sub(a, b): return a - b", "Permission is hereby granted",
             "THE SOFTWARE IS PROVIDED AS IS", "import sys, os", "class Parser: pass"]
    train = pl.DataFrame({"example_id": [f"t{i}" for i in range(len(texts))], "text": texts})
    queries = pl.DataFrame({"example_id": ["code", "law"], "text": ["def mul(a, b): return a * b",
                                                                    "permission is granted, AS IS"]})
    ctx = _context(adapter, model, train, queries)
    scorer = EKFACInfluence(EKFACConfig())
    factors = scorer.fit(ctx)
    full = scorer.score(ctx, factors)
    filtered = EKFACInfluence(EKFACConfig(tfidf_top_n=2)).score(ctx, factors)
    scored = ~np.isnan(filtered.matrix)
    assert scored.sum(0).tolist() == [2, 2]
    assert set(np.flatnonzero(scored[:, 0])) == {0, 1} and set(np.flatnonzero(scored[:, 1])) == {2, 3}
    np.testing.assert_allclose(filtered.matrix[scored], full.matrix[scored], rtol=1e-5)
    top = filtered.scores(top_k=5)
    assert top.group_by("query_id").len().sort("query_id")["len"].to_list() == [2, 2]
    with pytest.raises(CurationError, match="text"):
        EKFACInfluence(EKFACConfig(tfidf_top_n=2)).score(_digits_like(5), None)


def test_ekfac_rejects_non_linear_modules():
    ctx = _digits_like(6)
    bad = ScoringContext(adapter=ctx.adapter, checkpoints=ctx.checkpoints, train=ctx.train, queries=ctx.queries,
                         modules=("1",))  # the ReLU
    with pytest.raises(CurationError, match="nn.Linear"):
        EKFACInfluence().score(bad)
