"""TRAK equals its closed form computed from explicit autograd margin gradients (ensemble of two models), the
loss output is used for adapters without logits, and the random projection approximates the exact scores."""

import numpy as np
import polars as pl
import pytest
import torch

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.trak import TRAKConfig, TRAKScorer
from curation.gradients import ProjectionConfig
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter
from curation.plugins import get_plugin


def _table(n: int, seed: int, prefix: str) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"example_id": [f"{prefix}{i}" for i in range(n)], "features": rng.random((n, 4)).tolist(),
                         "label": rng.integers(0, 3, n)})


@pytest.fixture(scope="module")
def context() -> ScoringContext:
    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=4, n_classes=3, dtype="float64"))
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(CheckpointModel(model=adapter.build_model().eval()))
    return ScoringContext(adapter=adapter, checkpoints=tuple(models), train=_table(40, 0, "t"),
                          queries=_table(6, 1, "q"), batch_size=8)


def _margin_grads(ctx: ScoringContext, model: torch.nn.Module, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    grads, margins = [], []
    for i in range(frame.height):
        batch = ctx.adapter.collate(frame[i : i + 1])
        logits = model(batch["x"])[0]
        y = int(batch["y"][0])
        others = torch.cat([logits[:y], logits[y + 1 :]])
        m = logits[y] - torch.logsumexp(others, 0)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(m, list(model.parameters()))]).numpy())
        margins.append(float(m.detach()))
    return np.stack(grads), np.array(margins)


def test_trak_equals_closed_form(context) -> None:
    damping = 1e-3
    scores, leverage, q = 0, 0, 0
    for ck in context.checkpoints:
        phi, margin = _margin_grads(context, ck.model, context.train)
        phi_q, _ = _margin_grads(context, ck.model, context.queries)
        gram = phi.T @ phi
        kernel = np.linalg.inv(gram + damping * np.mean(np.diag(gram)) * np.eye(gram.shape[0]))
        scores = scores + phi @ kernel @ phi_q.T / 2
        leverage = leverage + np.einsum("ij,jk,ik->i", phi, kernel, phi) / 2
        q = q + (1 - 1 / (1 + np.exp(-margin))) / 2  # 1 - p_y
    cfg = TRAKConfig(projection=ProjectionConfig(kind="identity"), damping=damping)
    result = TRAKScorer(cfg).score(context)
    assert result.extras["output"] == "margin"
    # features are stored as float32, hence the tolerance
    expected = scores * q[:, None]
    np.testing.assert_allclose(result.matrix, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(result.self_influence, leverage * q, rtol=1e-4)
    np.testing.assert_allclose(TRAKScorer(cfg).self_influence(context), leverage * q, rtol=1e-4)


def test_loss_output_uses_loss_gradients(context) -> None:
    cfg = TRAKConfig(projection=ProjectionConfig(kind="identity"), damping=1e-3, output="loss")
    single = ScoringContext(adapter=context.adapter, checkpoints=context.checkpoints[:1], train=context.train,
                            queries=context.queries)
    model = single.final_model
    params = list(model.parameters())

    def grads(frame: pl.DataFrame) -> np.ndarray:
        rows = []
        for i in range(frame.height):
            loss = single.adapter.example_losses(model, single.adapter.collate(frame[i : i + 1]))[0]
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).numpy())
        return np.stack(rows)

    g, gq = grads(single.train), grads(single.queries)
    gram = g.T @ g
    expected = g @ np.linalg.inv(gram + 1e-3 * np.mean(np.diag(gram)) * np.eye(len(gram))) @ gq.T
    np.testing.assert_allclose(TRAKScorer(cfg).score(single).matrix, expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max())


def test_projection_preserves_ranking(context) -> None:
    exact = TRAKScorer(TRAKConfig(projection=ProjectionConfig(kind="identity"), damping=1e-2)).score(context)
    sketch = TRAKScorer(TRAKConfig(projection=ProjectionConfig(kind="rademacher", dim=15), damping=1e-2)).score(context)
    # 15 coordinates from exactly 15 parameters: a random orthogonal-ish change of basis keeps the kernel scores
    assert np.corrcoef(exact.matrix.ravel(), sketch.matrix.ravel())[0, 1] > 0.99


def test_registered_as_plugin() -> None:
    assert get_plugin("curation.scorers", "trak") is TRAKScorer


def test_dual_form_equals_primal_when_rows_are_few() -> None:
    from curation.attribution.trak import trak_features

    rng = np.random.default_rng(0)
    phi = rng.normal(size=(7, 20))  # n < k: dual (n x n) path
    lam = 1e-2 * (phi**2).sum() / 20
    primal = phi @ np.linalg.inv(phi.T @ phi + lam * np.eye(20))
    np.testing.assert_allclose(trak_features(phi, 1e-2), primal, rtol=1e-8, atol=1e-12)
    tall = rng.normal(size=(30, 5))  # n > k: primal path
    lam = 1e-2 * (tall**2).sum() / 5
    np.testing.assert_allclose(trak_features(tall, 1e-2), tall @ np.linalg.inv(tall.T @ tall + lam * np.eye(5)),
                               rtol=1e-8)
