"""A library-neutral view of a fitted gradient-boosted ensemble: per-tree leaf values, learning rate, L2 leaf
regulariser, base score, and the leaf every row lands in. The influence methods (BoostIn, TREX, LeafInfluence)
only need this, so a new tree library plugs in by producing a ``TreeEnsemble``.

``leaves_of`` answers "which leaf of each tree" for a feature matrix (LightGBM ``predict(pred_leaf=True)``).
``trajectory`` replays boosting on labelled rows and returns, per tree, the gradient, Hessian and third
derivative of the loss at the prediction *before* that tree: the quantities of the Newton leaf values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from curation.gbdt.losses import Loss, loss_for


@dataclass(frozen=True)
class Trajectory:
    """Per row and tree (``[n, n_trees]``): leaf index, gradient, Hessian, third derivative before the tree; and
    per row the label, the final raw prediction and the loss gradient there."""

    leaves: np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    third: np.ndarray
    y: np.ndarray
    final_raw: np.ndarray
    final_grad: np.ndarray


@dataclass(frozen=True)
class TreeEnsemble:
    """A boosted ensemble with Newton leaf values (single output: binary log-loss or squared error).

    ``leaf_values[b][l]`` is tree ``b``'s shrunk leaf output (learning rate applied; the base score that LightGBM
    folds into the first tree is removed), ``bias`` the base score, ``l2`` the L2 leaf regulariser.
    """

    objective: str
    learning_rate: float
    l2: float
    bias: float
    leaf_values: tuple[np.ndarray, ...]
    leaves_of: Callable[[np.ndarray], np.ndarray]

    @property
    def n_trees(self) -> int:
        return len(self.leaf_values)

    @property
    def loss(self) -> Loss:
        return loss_for(self.objective)

    @property
    def leaf_offsets(self) -> np.ndarray:
        """Start of each tree's leaves in the concatenation of all leaves (``[n_trees + 1]``)."""
        return np.concatenate([[0], np.cumsum([len(v) for v in self.leaf_values])]).astype(np.int64)

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        """Raw score (log-odds or value) of each row from the leaf values; equals the library's raw prediction."""
        leaves = self.leaves_of(x)
        return self.bias + sum(self.leaf_values[b][leaves[:, b]] for b in range(self.n_trees))

    def trajectory(self, x: np.ndarray, y: np.ndarray) -> Trajectory:
        """Replay boosting on ``(x, y)``: derivatives of the loss before every tree, and the final raw score."""
        leaves = self.leaves_of(x)
        n, loss = len(y), self.loss
        raw = np.full(n, self.bias, dtype=np.float64)
        grad, hess, third = (np.empty((n, self.n_trees)) for _ in range(3))
        for b in range(self.n_trees):
            grad[:, b], hess[:, b], third[:, b] = loss.derivatives(y, raw)
            raw += self.leaf_values[b][leaves[:, b]]
        return Trajectory(leaves, grad, hess, third, np.asarray(y, dtype=np.float64), raw, loss.gradient(y, raw))

    def leaf_hessian_sums(self, traj: Trajectory) -> tuple[np.ndarray, ...]:
        """Per tree, the sum of training Hessians in each leaf (the Newton denominator without ``l2``)."""
        return tuple(np.bincount(traj.leaves[:, b], weights=traj.hess[:, b], minlength=len(self.leaf_values[b]))
                     for b in range(self.n_trees))

    def newton_mismatch(self, traj: Trajectory) -> float:
        """Largest gap between the model's leaf values and the Newton values recomputed from ``traj``'s rows.

        Near zero when ``traj`` covers exactly the rows the booster was trained on; large when it does not
        (a sample of the training set, or a model trained with bagging), which makes influence approximate.
        """
        worst = 0.0
        for b, hsum in enumerate(self.leaf_hessian_sums(traj)):
            gsum = np.bincount(traj.leaves[:, b], weights=traj.grad[:, b], minlength=len(hsum))
            newton = -self.learning_rate * gsum / (hsum + self.l2)
            seen = np.bincount(traj.leaves[:, b], minlength=len(hsum)) > 0
            if seen.any():
                worst = max(worst, float(np.max(np.abs(newton[seen] - self.leaf_values[b][seen]))))
        return worst


def leaf_matrix(offsets: np.ndarray, leaves: np.ndarray, values: np.ndarray | None = None) -> sparse.csr_matrix:
    """Sparse ``[n, total_leaves]`` matrix with ``values[i, b]`` (1 when ``None``) at row ``i`` and the column of
    the leaf row ``i`` reaches in tree ``b``: one non-zero per tree, so products cost ``O(n * n_trees)``."""
    n, n_trees = leaves.shape
    cols = (leaves + offsets[:-1][None, :]).ravel()
    data = np.ones(n * n_trees) if values is None else np.asarray(values, dtype=np.float64).ravel()
    rows = np.repeat(np.arange(n), n_trees)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, int(offsets[-1])))
