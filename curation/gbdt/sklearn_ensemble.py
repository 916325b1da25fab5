"""Read a fitted scikit-learn ``GradientBoostingClassifier`` (binary ``log_loss``) or ``GradientBoostingRegressor``
(``squared_error``) into a ``TreeEnsemble``: leaf membership from ``apply``, unshrunk leaf values from each tree's
``tree_.value`` (scikit-learn stores the Newton step ``-G/H`` there; the learning rate scales it at prediction),
the base score from the model's ``init`` estimator, and no L2 leaf regulariser.

This is a Python-API entry point only: scikit-learn models have no safe on-disk format here (pickle is never
loaded), so there is no registered adapter for them. ``HistGradientBoosting*`` exposes no leaf membership and
XGBoost is not a dependency; both are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curation.errors import CurationError
from curation.gbdt.ensemble import TreeEnsemble

_LOSSES = {"GradientBoostingClassifier": ("log_loss", "binary"), "GradientBoostingRegressor": ("squared_error", "regression")}


def ensemble_from_sklearn(model: Any) -> TreeEnsemble:
    """The ``TreeEnsemble`` of a fitted scikit-learn gradient-boosting model."""
    kind = type(model).__name__
    if kind not in _LOSSES:
        raise CurationError(f"{kind} is not supported: use GradientBoostingClassifier or GradientBoostingRegressor")
    loss, objective = _LOSSES[kind]
    if model.loss != loss:
        raise CurationError(f"{kind}(loss='{model.loss}') is not supported: tree influence needs loss='{loss}'")
    if model.estimators_.shape[1] != 1:
        raise CurationError(f"{kind} with {model.estimators_.shape[1]} outputs is not supported (binary only)")
    if model.subsample != 1.0:
        raise CurationError(f"{kind}(subsample={model.subsample}) is not supported: Newton leaves need every row")
    trees = [est.tree_ for est in model.estimators_[:, 0]]
    leaf_nodes = [np.flatnonzero(t.children_left == -1) for t in trees]
    compact = []  # node id -> leaf index, per tree
    for t, leaves in zip(trees, leaf_nodes, strict=True):
        index = np.full(t.node_count, -1, dtype=np.int64)
        index[leaves] = np.arange(len(leaves))
        compact.append(index)
    values = tuple(model.learning_rate * t.value[leaves, 0, 0] for t, leaves in zip(trees, leaf_nodes, strict=True))
    bias = float(np.ravel(model._raw_predict_init(np.zeros((1, model.n_features_in_))))[0])

    def leaves_of(x: np.ndarray) -> np.ndarray:
        nodes = model.apply(x).reshape(len(x), -1).astype(np.int64)
        return np.stack([compact[b][nodes[:, b]] for b in range(len(trees))], axis=1)

    return TreeEnsemble(objective=objective, learning_rate=float(model.learning_rate), l2=0.0, bias=bias,
                        leaf_values=values, leaves_of=leaves_of)
