"""TREX (Brophy, Hammoudeh & Lowd, JMLR 2023): representer points for tree ensembles.

Each row is mapped to the ``lpw`` tree kernel feature: the one-hot of the leaf it reaches in every tree, weighted
by ``1 / (training rows in that leaf)``. An L2-regularised linear surrogate (logistic for binary, squared error
for regression, no intercept) is fitted to the training labels by minimising
``mean_i loss(y_i, phi_i . w) + lmbd * ||w||^2``; at its optimum ``w = sum_i alpha_i phi_i`` with
``alpha_i = -loss'(y_i, phi_i . w) / (2 * lmbd * n)`` (representer theorem), so a query's surrogate score is
``f_t = sum_i alpha_i K(x_i, x_t)``. The influence of ``i`` on ``t`` is the surrogate loss increase when
``alpha_i`` is zeroed: ``loss(y_t, f_t - alpha_i K_it) - loss(y_t, f_t)`` (positive = helpful).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, sparse

from curation.gbdt.ensemble import Trajectory, TreeEnsemble, leaf_matrix
from curation.gbdt.losses import Loss


def kernel_features(ens: TreeEnsemble, train: Trajectory, leaves: np.ndarray) -> sparse.csr_matrix:
    """``lpw`` features ``[n, total_leaves]`` of rows with leaf indices ``leaves`` (counts from ``train``)."""
    offsets = ens.leaf_offsets
    counts = np.bincount((train.leaves + offsets[:-1][None, :]).ravel(), minlength=int(offsets[-1]))
    weights = 1.0 / np.maximum(counts, 1)
    return leaf_matrix(offsets, leaves, weights[leaves + offsets[:-1][None, :]])


def representer_weights(features: sparse.csr_matrix, y: np.ndarray, loss: Loss, *, lmbd: float,
                        max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha [n], surrogate weights w)`` of the L2-regularised linear surrogate fitted by L-BFGS."""
    n = features.shape[0]

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        raw = features @ w
        grad_raw = loss.gradient(y, raw)
        value = float(np.mean(loss.value(y, raw)) + lmbd * w @ w)
        return value, features.T @ grad_raw / n + 2.0 * lmbd * w

    fit = optimize.minimize(objective, np.zeros(features.shape[1]), jac=True, method="L-BFGS-B",
                            options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-14})
    alpha = -loss.gradient(y, features @ fit.x) / (2.0 * lmbd * n)
    return alpha, fit.x


def trex(ens: TreeEnsemble, train: Trajectory, queries: Trajectory | None, *,
         lmbd: float = 0.003) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_train, n_query], self_influence [n_train])``; ``queries=None`` gives an empty matrix."""
    loss = ens.loss
    phi = kernel_features(ens, train, train.leaves)
    alpha, _ = representer_weights(phi, train.y, loss, lmbd=lmbd)
    own_kernel = np.asarray(phi.multiply(phi).sum(axis=1)).ravel()
    own_score = phi @ (phi.T @ alpha)
    self_inf = loss.value(train.y, own_score - alpha * own_kernel) - loss.value(train.y, own_score)
    if queries is None:
        return np.zeros((len(alpha), 0)), self_inf
    kernel = (phi @ kernel_features(ens, train, queries.leaves).T).toarray()  # [n_train, n_query]
    score = alpha @ kernel
    removed = loss.value(queries.y[None, :], score[None, :] - alpha[:, None] * kernel)
    return removed - loss.value(queries.y, score)[None, :], self_inf
