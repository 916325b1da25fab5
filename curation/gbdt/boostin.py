"""BoostIn (Brophy, Hammoudeh & Lowd, JMLR 2023): TracIn adapted to gradient boosting.

For tree ``b`` with Newton leaves, the derivative of the leaf value that training row ``i`` reaches with respect
to ``i``'s weight is ``dv_ib = lr * (g_ib + v_l * h_ib) / (H_l + l2)`` (``H_l``: summed training Hessians in
the leaf). The influence of ``i`` on query ``t`` sums, over the trees where both share a leaf, ``dv_ib * g_tb``
(``g_tb``: the query's loss gradient before tree ``b``). Positive = proponent (up-weighting ``i`` lowers the
query's loss). Self-influence is ``sum_b dv_ib * g_ib``.

``leaf_value="shrunk"`` uses the stored (learning-rate-scaled) leaf output for ``v_l``, as the reference
implementation (tree-influence 0.1.7) does; ``"newton"`` uses the unshrunk Newton value ``-G_l / (H_l + l2)``,
the exact derivative of the leaf value.
"""

from __future__ import annotations

import numpy as np

from curation.gbdt.ensemble import Trajectory, TreeEnsemble, leaf_matrix

LEAF_VALUES = ("shrunk", "newton")


def leaf_derivatives(ens: TreeEnsemble, traj: Trajectory, *, leaf_value: str = "shrunk") -> np.ndarray:
    """``[n_train, n_trees]``: derivative of the leaf value each training row reaches w.r.t. its weight."""
    hsums = ens.leaf_hessian_sums(traj)
    out = np.empty_like(traj.grad)
    scale = 1.0 if leaf_value == "shrunk" else 1.0 / ens.learning_rate
    for b in range(ens.n_trees):
        leaf = traj.leaves[:, b]
        v = ens.leaf_values[b][leaf] * scale
        out[:, b] = ens.learning_rate * (traj.grad[:, b] + v * traj.hess[:, b]) / (hsums[b][leaf] + ens.l2)
    return out


def boostin(ens: TreeEnsemble, train: Trajectory, queries: Trajectory | None, *,
            leaf_value: str = "shrunk") -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_train, n_query], self_influence [n_train])``; ``queries=None`` gives an empty matrix."""
    dv = leaf_derivatives(ens, train, leaf_value=leaf_value)
    self_inf = np.sum(dv * train.grad, axis=1)
    if queries is None:
        return np.zeros((len(dv), 0)), self_inf
    offsets = ens.leaf_offsets
    query_side = leaf_matrix(offsets, queries.leaves, queries.grad).T.toarray()  # [total_leaves, n_query]
    return np.asarray(leaf_matrix(offsets, train.leaves, dv) @ query_side), self_inf
