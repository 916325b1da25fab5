"""Leave-one-out ground truth for LeafInfluence: recompute every leaf value of an ensemble, tree structure fixed,
after re-weighting training rows (weight 0 = removed). Leaf ``l`` of tree ``b`` becomes
``-lr * sum_j w_j g_j / (sum_j w_j h_j + l2)`` with gradients at the *refitted* predictions of earlier trees,
which is exactly what LeafInfluence linearises."""

from __future__ import annotations

import numpy as np

from curation.gbdt.ensemble import TreeEnsemble


def refit_leaf_values(ens: TreeEnsemble, leaves: np.ndarray, y: np.ndarray,
                      weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """New leaf values per tree for training rows (``leaves [n, n_trees]``, labels ``y``) weighted by ``weights``.

    A leaf left with no weight keeps value 0 (no rows to fit)."""
    raw = np.full(len(y), ens.bias, dtype=np.float64)
    refitted = []
    for b in range(ens.n_trees):
        g, h, _ = ens.loss.derivatives(y, raw)
        n_leaves = len(ens.leaf_values[b])
        gsum = np.bincount(leaves[:, b], weights=weights * g, minlength=n_leaves)
        hsum = np.bincount(leaves[:, b], weights=weights * h, minlength=n_leaves)
        values = np.where(hsum + ens.l2 > 0, -ens.learning_rate * gsum / np.maximum(hsum + ens.l2, 1e-300), 0.0)
        refitted.append(values)
        raw = raw + values[leaves[:, b]]
    return tuple(refitted)


def loo_loss_change(ens: TreeEnsemble, train_leaves: np.ndarray, y: np.ndarray, query_leaves: np.ndarray,
                    query_y: np.ndarray, removed: int) -> np.ndarray:
    """Query loss after removing training row ``removed`` (fixed structure) minus the loss with all rows."""
    full = refit_leaf_values(ens, train_leaves, y, np.ones(len(y)))
    weights = np.ones(len(y))
    weights[removed] = 0.0
    loo = refit_leaf_values(ens, train_leaves, y, weights)

    def raw(values: tuple[np.ndarray, ...]) -> np.ndarray:
        return ens.bias + sum(values[b][query_leaves[:, b]] for b in range(ens.n_trees))

    return ens.loss.value(query_y, raw(loo)) - ens.loss.value(query_y, raw(full))
