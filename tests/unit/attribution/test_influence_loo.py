"""Leave-one-out ground truth: influence predictions vs retraining, on L2-regularised logistic regression.

scikit-learn digits (standardised; 1,437 train / 360 test), float64 multinomial logistic regression with objective
``mean CE + λ/2 ||θ||²``. For 5 test points x 100 training points the model is retrained without each training
point to convergence (Newton-type iterations warm-started at the full optimum, gradient norm < 1e-12) and the
change of each test point's loss is compared with the prediction ``score / n``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.ekfac import EKFACConfig, EKFACInfluence
from curation.attribution.influence_cg import CGInfluence, CGInfluenceConfig
from curation.attribution.influence_exact import ExactInfluence, ExactInfluenceConfig
from curation.data.digits import DigitsConfig, build_digits
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter

LAMBDA = 1e-2
N_TEST, N_TRAIN = 5, 100


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class _L2Logistic:
    """``mean_i w_i CE(x_i, y_i) + λ/2 ||W||²`` in closed form; ``W`` is ``[K, D+1]`` (bias last)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, k: int) -> None:
        self.x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        self.y = np.eye(k)[y]
        self.k = k

    def gradient(self, w: np.ndarray, weights: np.ndarray) -> np.ndarray:
        r = (_softmax(self.x @ w.T) - self.y) * weights[:, None]
        return r.T @ self.x / len(weights) + LAMBDA * w

    def hessian(self, w: np.ndarray, weights: np.ndarray) -> np.ndarray:
        p = _softmax(self.x @ w.T)
        d = self.x.shape[1]
        h = np.zeros((self.k, d, self.k, d))
        for c in range(self.k):
            for c2 in range(self.k):
                coef = p[:, c] * ((c == c2) - p[:, c2]) * weights
                h[c, :, c2, :] = (self.x * coef[:, None]).T @ self.x / len(weights)
        h = h.reshape(self.k * d, self.k * d)
        return h + LAMBDA * np.eye(self.k * d)

    def minimise(self, w: np.ndarray, weights: np.ndarray, inv_hess: np.ndarray | None = None) -> np.ndarray:
        """Newton (``inv_hess=None``) or fixed-Hessian Newton iterations until ||grad|| < 1e-12."""
        for _ in range(200):
            g = self.gradient(w, weights)
            if np.linalg.norm(g) < 1e-12:
                return w
            inv = inv_hess if inv_hess is not None else np.linalg.inv(self.hessian(w, weights))
            w = w - (inv @ g.reshape(-1)).reshape(w.shape)
        raise AssertionError("LOO retraining did not converge")

    def losses(self, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        p = _softmax(np.concatenate([x, np.ones((len(x), 1))], axis=1) @ w.T)
        return -np.log(p[np.arange(len(y)), y])


@pytest.fixture(scope="module")
def loo_setup():
    train, test, _ = build_digits(DigitsConfig(noise_fraction=0.0))
    x = np.asarray(train["features"].to_list())
    xt = np.asarray(test["features"].to_list())
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    x, xt = (x - mean) / std, (xt - mean) / std
    y, yt = train["label"].to_numpy(), test["label"].to_numpy()
    assert (len(y), len(yt)) == (1437, 360)
    problem = _L2Logistic(x, y, 10)
    ones = np.ones(len(y))
    w = problem.minimise(np.zeros((10, 65)), ones)
    rng = np.random.default_rng(0)
    test_idx = rng.choice(len(yt), N_TEST, replace=False)
    train_idx = rng.choice(len(y), N_TRAIN, replace=False)
    base = problem.losses(w, xt[test_idx], yt[test_idx])
    inv_full = np.linalg.inv(problem.hessian(w, ones))
    actual = np.empty((N_TRAIN, N_TEST))
    for row, i in enumerate(train_idx):
        weights = ones.copy()
        weights[i] = 0.0
        w_loo = problem.minimise(w.copy(), weights, inv_hess=inv_full)
        actual[row] = problem.losses(w_loo, xt[test_idx], yt[test_idx]) - base

    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=64, n_classes=10, dtype="float64"))
    model = adapter.build_model()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w[:, :64]))
        model[0].bias.copy_(torch.from_numpy(w[:, 64]))

    def frame(xs: np.ndarray, ys: np.ndarray, prefix: str) -> pl.DataFrame:
        return pl.DataFrame({"example_id": [f"{prefix}{i}" for i in range(len(ys))], "features": xs.tolist(),
                             "label": ys})

    ctx = ScoringContext(adapter=adapter, checkpoints=(CheckpointModel(model=model),), train=frame(x, y, "t"),
                         queries=frame(xt[test_idx], yt[test_idx], "q"), batch_size=256)
    return ctx, train_idx, actual


def _predicted(matrix: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
    return matrix[train_idx] / 1437.0


def test_exact_influence_predicts_leave_one_out(loo_setup):
    ctx, train_idx, actual = loo_setup
    result = ExactInfluence(ExactInfluenceConfig(damping=LAMBDA, self_influence=False)).score(ctx)
    pred = _predicted(result.matrix, train_idx)
    rho = spearmanr(pred.ravel(), actual.ravel()).statistic
    assert rho >= 0.98, rho
    # first-order predictions are also calibrated in magnitude, not just in rank
    assert pearsonr(pred.ravel(), actual.ravel()).statistic >= 0.98


def test_cg_influence_predicts_leave_one_out(loo_setup):
    ctx, train_idx, actual = loo_setup
    result = CGInfluence(CGInfluenceConfig(damping=LAMBDA, tol=1e-10, max_iter=1000)).score(ctx)
    rho = spearmanr(_predicted(result.matrix, train_idx).ravel(), actual.ravel()).statistic
    assert rho >= 0.98, rho


def test_ekfac_predicts_leave_one_out(loo_setup):
    ctx, train_idx, actual = loo_setup
    result = EKFACInfluence(EKFACConfig(damping=LAMBDA, self_influence=False)).score(ctx)
    r = pearsonr(_predicted(result.matrix, train_idx).ravel(), actual.ravel()).statistic
    assert r >= 0.80, r
