"""LeafInfluence (Sharchilev et al., ICML 2018; as adapted by Brophy et al., JMLR 2023): influence functions for
GBDTs with the tree structure held fixed.

Down-weighting training row ``i`` changes every leaf value ``v_l = -lr * sum_j w_j g_j / (sum_j w_j h_j + l2)``
directly (when ``i`` is in the leaf) and through the predictions ``a_j`` that earlier trees feed into ``g_j``,
``h_j``. With ``u_l = v_l / lr`` the unshrunk value and ``da_j = d a_j / d w_i``:

    d v_l / d w_i = -lr * ( sum_{j in l} da_j (h_j + u_l t_j) + 1[i in l] (g_i + u_l h_i) ) / (H_l + l2)

and ``da_j`` grows by ``d v_l / d w_i`` for the rows of leaf ``l`` after each tree. ``update_set=0`` tracks
``da`` of row ``i`` only (O(n * trees) in all); ``update_set=-1`` tracks every training row (exact first order,
O(n^2 * trees) time, computed for ``chunk`` removed rows at a time so memory stays O(chunk * n)).
Influence on query ``t`` is ``-g_t * sum_b d v_{leaf_b(t)} / d w_i`` with ``g_t`` the gradient at the final
prediction: positive = removing ``i`` raises the query's loss (helpful), as in tree-influence.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from curation.gbdt.ensemble import Trajectory, TreeEnsemble, leaf_matrix
from curation.progress import progress_bar

UPDATE_SETS = (0, -1)


def _tree_terms(ens: TreeEnsemble, traj: Trajectory, b: int, hsum: np.ndarray) -> tuple[np.ndarray, ...]:
    leaf = traj.leaves[:, b]
    u = ens.leaf_values[b][leaf] / ens.learning_rate
    multiplier = traj.hess[:, b] + u * traj.third[:, b]
    addendum = traj.grad[:, b] + u * traj.hess[:, b]
    return leaf, multiplier, addendum, hsum + ens.l2


def _update_set_zero(ens: TreeEnsemble, train: Trajectory) -> np.ndarray:
    """``[n, n_trees]``: derivative of the leaf value row ``i`` reaches in tree ``b`` w.r.t. ``i``'s own weight
    (the only non-zero leaf derivatives when only ``i``'s prediction is tracked)."""
    n = len(train.y)
    da = np.zeros(n)
    deriv = np.empty((n, ens.n_trees))
    for b, hsum in enumerate(ens.leaf_hessian_sums(train)):
        leaf, multiplier, addendum, denom = _tree_terms(ens, train, b, hsum)
        deriv[:, b] = -ens.learning_rate * (da * multiplier + addendum) / denom[leaf]
        da += deriv[:, b]
    return deriv


def _update_set_all(ens: TreeEnsemble, train: Trajectory, query_leaves: np.ndarray | None, *, chunk: int,
                    show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(summed leaf derivatives on each query's path [n, n_query], on each row's own path [n])`` with every
    training row's prediction tracked, ``chunk`` removed rows at a time."""
    n = len(train.y)
    m = 0 if query_leaves is None else len(query_leaves)
    on_queries, on_self = np.zeros((n, m)), np.zeros(n)
    hsums = ens.leaf_hessian_sums(train)
    terms = [_tree_terms(ens, train, b, hsum) for b, hsum in enumerate(hsums)]
    members = [sparse.csr_matrix((np.ones(n), (leaf, np.arange(n))), shape=(len(hsum), n))
               for (leaf, *_), hsum in zip(terms, hsums, strict=True)]  # [leaves, n] one-hot
    with progress_bar(total=n, description="LeafInfluence (update_set=-1)", enabled=show_progress) as advance:
        for start in range(0, n, chunk):
            removed = np.arange(start, min(start + chunk, n))
            cols = np.arange(len(removed))
            da = np.zeros((n, len(removed)))  # d prediction of every row / d weight of each removed row
            for b, (leaf, multiplier, addendum, denom) in enumerate(terms):
                numer = members[b] @ (da * multiplier[:, None])  # [leaves, chunk]
                numer[leaf[removed], cols] += addendum[removed]
                deriv = -ens.learning_rate * numer / denom[:, None]
                da += deriv[leaf]
                on_self[removed] += deriv[leaf[removed], cols]
                if m:
                    on_queries[removed] += deriv[query_leaves[:, b]].T
            advance(len(removed))
    return on_queries, on_self


def leaf_influence(ens: TreeEnsemble, train: Trajectory, queries: Trajectory | None, *, update_set: int = -1,
                   chunk: int = 256, show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_train, n_query], self_influence [n_train])``; ``queries=None`` gives an empty matrix."""
    if update_set not in UPDATE_SETS:
        raise ValueError(f"update_set must be one of {UPDATE_SETS}, got {update_set}")
    if update_set == 0:
        deriv = _update_set_zero(ens, train)
        self_inf = -train.final_grad * deriv.sum(axis=1)
        if queries is None:
            return np.zeros((len(deriv), 0)), self_inf
        offsets = ens.leaf_offsets
        on_queries = leaf_matrix(offsets, train.leaves, deriv) @ leaf_matrix(offsets, queries.leaves).T.toarray()
        return -np.asarray(on_queries) * queries.final_grad[None, :], self_inf
    on_queries, on_self = _update_set_all(ens, train, None if queries is None else queries.leaves, chunk=chunk,
                                          show_progress=show_progress)
    matrix = on_queries if queries is None else -on_queries * queries.final_grad[None, :]
    return matrix, -train.final_grad * on_self
