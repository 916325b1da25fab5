"""Exact influence equals the closed form on a float64 L2-regularised multinomial logistic regression.

The closed form writes the gradient and Hessian of softmax cross-entropy by hand: per example
``g = (p − y) ⊗ [x, 1]`` and ``H = mean((diag p − p pᵀ) ⊗ [x,1][x,1]ᵀ) + λI``; the scorer builds its Hessian
from autograd HVPs, so agreement checks the whole pipeline (sign, ordering of parameters, damping, scaling).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.influence_cg import CGInfluence, CGInfluenceConfig
from curation.attribution.influence_exact import ExactInfluence, ExactInfluenceConfig
from curation.attribution.influence_lissa import LiSSAInfluence, LiSSAInfluenceConfig
from curation.errors import CurationError
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter


def _frame(x: np.ndarray, y: np.ndarray, prefix: str) -> pl.DataFrame:
    return pl.DataFrame({"example_id": [f"{prefix}{i}" for i in range(len(y))], "features": x.tolist(), "label": y})


def _closed_form(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, xq: np.ndarray, yq: np.ndarray, lam: float):
    """Scores ``g_zᵀ (H + λI)⁻¹ g_q`` and self-influence from hand-written softmax formulas (W rows, then b)."""
    w = model[0].weight.detach().numpy()
    b = model[0].bias.detach().numpy()
    k, d = w.shape

    def grads(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = xs @ w.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        r = p - np.eye(k)[ys]
        gw = (r[:, :, None] * xs[:, None, :]).reshape(len(ys), k * d)
        return np.concatenate([gw, r], axis=1), p

    g, p = grads(x, y)
    gq, _ = grads(xq, yq)
    xt = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    h_aug = np.zeros((k, d + 1, k, d + 1))
    for i in range(len(x)):
        a = np.diag(p[i]) - np.outer(p[i], p[i])
        h_aug += np.einsum("ab,cd->acbd", a, np.outer(xt[i], xt[i]))
    h_aug /= len(x)
    # reorder [W (k*d) | b (k)] to match the flattened parameter vector
    idx = [(c, j) for c in range(k) for j in range(d)] + [(c, d) for c in range(k)]
    flat = np.array([c * (d + 1) + j for c, j in idx])
    h = h_aug.reshape(k * (d + 1), k * (d + 1))[np.ix_(flat, flat)] + lam * np.eye(k * (d + 1))
    inv = np.linalg.inv(h)
    return g @ inv @ gq.T, np.einsum("ip,pq,iq->i", g, inv, g)


@pytest.fixture(scope="module")
def small_lr():
    rng = np.random.default_rng(0)
    n, d, k = 60, 5, 3
    x = rng.normal(size=(n, d))
    y = rng.integers(0, k, size=n)
    xq = rng.normal(size=(4, d))
    yq = rng.integers(0, k, size=4)
    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=d, n_classes=k, dtype="float64"))
    torch.manual_seed(0)
    model = adapter.build_model()
    with torch.no_grad():  # an arbitrary (non-optimal) point: the formula must hold anywhere
        model[0].weight.normal_(0, 0.5)
        model[0].bias.normal_(0, 0.5)
    ctx = ScoringContext(
        adapter=adapter, checkpoints=(CheckpointModel(model=model),), train=_frame(x, y, "t"),
        queries=_frame(xq, yq, "q"), batch_size=16,
    )
    return ctx, x, y, xq, yq


def test_exact_equals_closed_form(small_lr):
    ctx, x, y, xq, yq = small_lr
    lam = 0.05
    result = ExactInfluence(ExactInfluenceConfig(damping=lam)).score(ctx)
    want, want_self = _closed_form(ctx.final_model, x, y, xq, yq, lam)
    np.testing.assert_allclose(result.matrix, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.self_influence, want_self, rtol=1e-9)
    frame = result.scores(top_k=3)
    assert frame.columns == ["example_id", "score", "query_id", "rank"] and frame.height == 12
    best = frame.filter(pl.col("query_id") == "q0", pl.col("rank") == 1)["example_id"][0]
    assert best == f"t{int(np.argmax(want[:, 0]))}"


def test_cg_and_lissa_match_exact(small_lr):
    ctx, *_ = small_lr
    lam = 0.05
    exact = ExactInfluence(ExactInfluenceConfig(damping=lam)).score(ctx)
    cg = CGInfluence(CGInfluenceConfig(damping=lam, tol=1e-12, max_iter=500, self_influence=True)).score(ctx)
    np.testing.assert_allclose(cg.matrix, exact.matrix, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cg.self_influence, exact.self_influence, rtol=1e-6)
    # full-batch LiSSA is a deterministic Neumann series: it must converge to the exact solution
    lam = 0.3
    exact = ExactInfluence(ExactInfluenceConfig(damping=lam)).score(ctx)
    lissa = LiSSAInfluence(LiSSAInfluenceConfig(damping=lam, depth=400, batch_size=60, scale=None)).score(ctx)
    np.testing.assert_allclose(lissa.matrix, exact.matrix, rtol=1e-3, atol=1e-4 * np.abs(exact.matrix).max())


def test_exact_refuses_indefinite_damping(small_lr):
    ctx, *_ = small_lr
    with pytest.raises(CurationError, match="damping"):
        ExactInfluence(ExactInfluenceConfig(damping=-0.0)).score(
            ScoringContext(adapter=ctx.adapter, checkpoints=ctx.checkpoints, train=ctx.train[:2],
                           queries=ctx.queries, batch_size=16)
        )


def test_gauss_newton_equals_hessian_for_a_linear_model(small_lr):
    ctx, x, y, xq, yq = small_lr
    result = ExactInfluence(ExactInfluenceConfig(damping=0.05, curvature="gauss_newton")).score(ctx)
    want, _ = _closed_form(ctx.final_model, x, y, xq, yq, 0.05)
    np.testing.assert_allclose(result.matrix, want, rtol=1e-5, atol=1e-6)


def test_gauss_newton_products_match_explicit_jacobians():
    from torch.func import functional_call, jacrev

    from curation.attribution.objective import TrainingObjective
    from curation.models.classifiers import MLPClassifierAdapter

    rng = np.random.default_rng(5)
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=4, n_classes=3, hidden=(5,), dtype="float64"))
    torch.manual_seed(1)
    model = adapter.build_model()
    train = _frame(rng.normal(size=(9, 4)), rng.integers(0, 3, size=9), "t")
    modules = adapter.tracked_modules(model)
    obj = TrainingObjective(adapter, model, train, modules, batch_size=4, curvature="gauss_newton")
    ggn = obj.hessian().numpy()
    x = adapter.collate(train)["x"]
    jac = jacrev(lambda t: functional_call(model, obj.unflatten(t), (x,)))(obj.theta)  # [n, K, P]
    p = torch.softmax(model(x), -1).detach()
    h_out = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
    want = torch.einsum("nkp,nkl,nlq->pq", jac, h_out, jac).numpy() / 9
    np.testing.assert_allclose(ggn, want, rtol=1e-8, atol=1e-12)
    assert np.linalg.eigvalsh(ggn).min() > -1e-12
    hess = TrainingObjective(adapter, model, train, modules, batch_size=4).hessian().numpy()
    assert np.abs(hess - ggn).max() > 1e-3  # the MLP's Hessian has non-Gauss-Newton terms
