"""Group influence: equals the sum of per-example influences (identity Hessian), sign and first-order accuracy,
per-task normalisation, LiSSA against an exact solve, EK-FAC layout against a dense construction."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
import torch

from curation.errors import DataContractError
from curation.gradients import per_example_gradients
from curation.mixture.group_influence import (
    GroupInfluenceConfig,
    group_influence,
    normalize_per_task,
    sample_domain,
    summed_gradient,
)
from curation.mixture.hessian import HVP, EKFACHessian, HessianConfig, LiSSAHessian
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig


def test_identity_group_influence_is_sum_of_example_influences(mlp64, digits_domains) -> None:
    adapter, model = mlp64
    train, val = digits_domains
    cfg = GroupInfluenceConfig(tokens_per_domain=40, tasks=("low", "high"), max_rows_per_task=60, seed=3)
    gi = group_influence(adapter, model, train, val, cfg)
    assert gi.domains == ("high", "low", "mid") and gi.rows == (40, 40, 40) and gi.hessian == "identity"
    for i, task in enumerate(gi.tasks):
        rows = val.filter(pl.col("domain") == task)
        rows = rows.sample(n=min(60, rows.height), seed=3)
        task_grad = per_example_gradients(adapter, model, adapter.collate(rows)).mean(0)
        for j, domain in enumerate(gi.domains):
            sample = sample_domain(adapter, train.filter(pl.col("domain") == domain), 40, seed=3)
            per_example = per_example_gradients(adapter, model, adapter.collate(sample)) @ task_grad
            assert gi.matrix[i, j] == pytest.approx(float(per_example.sum()), rel=1e-6, abs=1e-6)


def test_gpt_group_gradient_matches_per_example_sum() -> None:
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=32, block_size=16))
    torch.manual_seed(0)
    model = adapter.build_model()
    frame = pl.DataFrame({"example_id": list("abcde"),
                          "text": ["def f(x):", "return x + 1", "the licence", "é ü", "import os\n"]})
    modules = adapter.tracked_modules(model)
    summed = summed_gradient(adapter, model, frame, modules, batch_size=2)
    expected = per_example_gradients(adapter, model, adapter.collate(frame)).sum(0)
    torch.testing.assert_close(summed, expected, rtol=1e-4, atol=1e-6)


def test_influence_sign_and_size_predict_one_gradient_step(mlp64, digits_domains) -> None:
    """Identity-Hessian S[i, j] is the first-order loss drop of one step of size η on the domain's summed loss."""
    adapter, model = mlp64
    train, val = digits_domains
    gi = group_influence(adapter, model, train, val,
                         GroupInfluenceConfig(tokens_per_domain=30, tasks=("low",), max_rows_per_task=200))
    assert gi.matrix[0, gi.domains.index("low")] > 0 > gi.matrix[0, gi.domains.index("high")]
    rows = val.filter(pl.col("domain") == "low")
    rows = rows.sample(n=min(200, rows.height), seed=0)
    batch = adapter.collate(rows)
    with torch.no_grad():
        before = float(adapter.example_losses(model, batch).mean())
    eta = 1e-4
    for j, domain in enumerate(gi.domains):
        stepped = copy.deepcopy(model)
        sample = sample_domain(adapter, train.filter(pl.col("domain") == domain), 30, seed=0)
        loss = adapter.example_losses(stepped, adapter.collate(sample)).sum()
        loss.backward()
        with torch.no_grad():
            for p in stepped.parameters():
                p -= eta * p.grad
            drop = before - float(adapter.example_losses(stepped, batch).mean())
        assert drop == pytest.approx(eta * gi.matrix[0, j], rel=0.05)


def test_normalize_per_task_divides_by_best_domain_and_keeps_sign_when_none_helps(caplog) -> None:
    s = np.array([[2.0, 1.0, -1.0], [-3.0, -1.0, -2.0]])
    out = normalize_per_task(s, eps=0.0, tasks=["a", "b"])
    np.testing.assert_allclose(out[0], [1.0, 0.5, -0.5])
    np.testing.assert_allclose(out[1], [-1.0, -1 / 3, -2 / 3])
    assert "task b" in caplog.text


def test_normalize_per_task_with_baseline_measures_gain_over_the_prior() -> None:
    s = np.array([[4.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    prior = np.array([0.25, 0.25, 0.5])  # row 0: S·prior = 1.5; row 1: every domain equal
    out = normalize_per_task(s, eps=0.0, baseline=prior)
    np.testing.assert_allclose(out[0], [1.0, 0.2, -0.6])
    np.testing.assert_allclose(out[1], [0.0, 0.0, 0.0])


def test_lissa_matches_exact_damped_solve() -> None:
    """Acceptance check of the spec: ‖(H + λI)v − g‖ / ‖g‖ < 1e-2 against an explicit Hessian."""
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({"example_id": [str(i) for i in range(80)], "features": rng.normal(size=(80, 5)).tolist(),
                          "label": rng.integers(0, 3, 80)})
    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=5, n_classes=3, dtype="float64"))
    torch.manual_seed(0)
    model = adapter.build_model()
    hvp = HVP(adapter, model, frame, adapter.tracked_modules(model))
    n = sum(p.numel() for p in model.parameters())
    hessian = torch.stack([hvp(e) for e in torch.eye(n, dtype=torch.float64)])
    damping = 0.05
    g = torch.as_tensor(rng.normal(size=(2, n)))
    solved = LiSSAHessian(hvp, damping=damping, steps=300).solve(g)
    exact = torch.linalg.solve(hessian + damping * torch.eye(n, dtype=torch.float64), g.T).T
    residual = ((hessian + damping * torch.eye(n, dtype=torch.float64)) @ solved.T).T - g
    assert float(residual.norm() / g.norm()) < 1e-2
    torch.testing.assert_close(solved, exact, rtol=1e-3, atol=1e-3)


def test_ekfac_solve_equals_dense_kronecker_inverse(mlp64, digits_domains) -> None:
    """The flattened weight/bias layout is mapped onto the EK-FAC eigenbasis correctly."""
    adapter, model = mlp64
    train, _ = digits_domains
    modules = adapter.tracked_modules(model)
    ek = EKFACHessian(adapter, model, train[:64], modules, damping=1e-3)
    n = sum(p.numel() for p in model.parameters())
    v = torch.as_tensor(np.random.default_rng(0).normal(size=(2, n)))
    got = ek.solve(v)
    offset, blocks = 0, []
    for name in modules:
        layer = ek.factors.layers[name]
        q = torch.kron(layer.q_s, layer.q_a)  # vec(Q_S X Q_Aᵀ) = (Q_S ⊗ Q_A) vec(X), row-major
        dense = q @ torch.diag(1.0 / (layer.eigenvalues.reshape(-1) + 1e-3)) @ q.T
        rows, cols = layer.q_s.shape[0], layer.q_a.shape[0] - 1
        block = v[:, offset : offset + rows * cols + rows]
        offset += rows * cols + rows
        joined = torch.cat([block[:, : rows * cols].reshape(-1, rows, cols), block[:, rows * cols :, None]], -1)
        x = (dense @ joined.reshape(2, -1).T).T.reshape(-1, rows, cols + 1)
        blocks += [x[..., :cols].reshape(2, -1), x[..., cols]]
    torch.testing.assert_close(got, torch.cat(blocks, 1), rtol=1e-8, atol=1e-10)


def test_other_hessians_keep_the_sign_of_the_obvious_pairs(mlp64, digits_domains) -> None:
    adapter, model = mlp64
    train, val = digits_domains
    for kind in ("ekfac", "lissa"):
        cfg = GroupInfluenceConfig(tokens_per_domain=30, tasks=("low",), max_rows_per_task=100,
                                   hessian=HessianConfig(kind=kind, rows=96, damping=0.05, lissa_steps=60))
        gi = group_influence(adapter, model, train, val, cfg)
        assert gi.hessian == kind
        assert int(np.argmax(gi.matrix[0])) == gi.domains.index("low")


def test_unknown_task_and_missing_column_name_the_table(mlp64, digits_domains) -> None:
    adapter, model = mlp64
    train, val = digits_domains
    with pytest.raises(DataContractError, match="validation table: column 'domain' has no rows of task"):
        group_influence(adapter, model, train, val, GroupInfluenceConfig(tasks=("nope",)))
    with pytest.raises(DataContractError, match="training table: missing column 'domain'"):
        group_influence(adapter, model, train.drop("domain"), val, GroupInfluenceConfig())
