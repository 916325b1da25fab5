"""TracIn equals explicit, learning-rate-weighted per-example gradient dot products (autograd, one example at a
time); ReTrac renormalisation equals the same products of unit-normalised gradients; projection approximates."""

import numpy as np
import polars as pl
import pytest
import torch

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.gradients import ProjectionConfig
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.plugins import get_plugin

LRS = (0.3, 0.1, 0.02)


def _table(n: int, seed: int, prefix: str) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"example_id": [f"{prefix}{i}" for i in range(n)], "features": rng.random((n, 6)).tolist(),
                         "label": rng.integers(0, 3, n)})


@pytest.fixture(scope="module")
def context() -> ScoringContext:
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=6, n_classes=3, hidden=(8,)))
    checkpoints = []
    for seed, lr in enumerate(LRS):
        torch.manual_seed(seed)
        checkpoints.append(CheckpointModel(model=adapter.build_model().eval(), learning_rate=lr))
    return ScoringContext(adapter=adapter, checkpoints=tuple(checkpoints), train=_table(23, 0, "t"),
                          queries=_table(5, 1, "q"), batch_size=4)


def _explicit_grads(ctx: ScoringContext, frame: pl.DataFrame) -> list[np.ndarray]:
    """Per checkpoint, ``[n, p]`` gradients from plain autograd, one example at a time."""
    out = []
    for ck in ctx.checkpoints:
        params = [p for p in ck.model.parameters()]
        rows = []
        for i in range(frame.height):
            loss = ctx.adapter.example_losses(ck.model, ctx.adapter.collate(frame[i : i + 1]))[0]
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).double().numpy())
        out.append(np.stack(rows))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("normalize", ["none", "train", "both"])
def test_tracin_equals_explicit_gradient_dot_products(context, normalize) -> None:
    train, query = _explicit_grads(context, context.train), _explicit_grads(context, context.queries)
    tn = {"none": lambda g: g, "train": _unit, "both": _unit}[normalize]
    qn = _unit if normalize == "both" else (lambda g: g)
    expected = sum(lr * tn(g) @ qn(q).T for g, q, lr in zip(train, query, LRS))
    expected_self = sum(lr * (g**2).sum(1) for g, lr in zip(train, LRS))
    result = TracInScorer(TracInConfig(normalize=normalize)).score(context)
    np.testing.assert_allclose(result.matrix, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(result.self_influence, expected_self, rtol=1e-5)
    assert list(result.train_ids) == context.train["example_id"].to_list()
    top = result.scores(top_k=3)
    assert top.columns == ["example_id", "score", "query_id", "rank"] and top.height == 15
    best = top.filter(pl.col("rank") == 1).sort("query_id")
    assert best["score"].to_numpy() == pytest.approx(expected.max(axis=0), rel=1e-5)


def test_projected_tracin_approximates_exact(context) -> None:
    exact = TracInScorer(TracInConfig(normalize="none")).score(context)
    cfg = TracInConfig(normalize="none", projection=ProjectionConfig(kind="gaussian", dim=2048, seed=1))
    approx = TracInScorer(cfg).score(context)
    corr = np.corrcoef(exact.matrix.ravel(), approx.matrix.ravel())[0, 1]
    assert corr > 0.97, corr
    np.testing.assert_allclose(approx.self_influence, exact.self_influence, rtol=0.15)


def test_store_folder_is_reused(context, tmp_path) -> None:
    cfg = TracInConfig(store=str(tmp_path), normalize="train")
    first = TracInScorer(cfg).score(context)
    assert len(list(tmp_path.glob("train-loss-*/metadata.json"))) == 1 and len(list(tmp_path.glob("query-measurement-*"))) == 1
    second = TracInScorer(cfg).score(context)
    assert np.array_equal(first.matrix, second.matrix)


def test_registered_as_plugin() -> None:
    assert get_plugin("curation.scorers", "tracin") is TracInScorer
