"""Read a LightGBM booster into a ``TreeEnsemble``: leaf outputs from its text model, leaf membership from
``predict(pred_leaf=True)``, learning rate and ``lambda_l2`` from the booster's own parameters.

The influence formulas assume plain Newton leaves, so boosters whose leaf values are not ``-lr * G / (H + l2)``
over all training rows (L1, bagging, GOSS/DART/RF, max_delta_step, path smoothing, linear trees, class weights,
a non-unit sigmoid) are refused with a one-line error naming the parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curation.errors import CurationError
from curation.gbdt.ensemble import TreeEnsemble
from curation.gbdt.losses import OBJECTIVES

_ZERO_PARAMS = ("lambda_l1", "max_delta_step", "path_smooth")
_ONE_PARAMS = ("bagging_fraction", "pos_bagging_fraction", "neg_bagging_fraction", "scale_pos_weight", "sigmoid")


def _check_params(params: dict[str, Any]) -> str:
    objective = str(params.get("objective", "")).split()[0]
    objective = {"regression_l2": "regression", "l2": "regression", "mse": "regression"}.get(objective, objective)
    if objective not in OBJECTIVES:
        raise CurationError(f"LightGBM objective '{objective}' is not supported (use {' or '.join(OBJECTIVES)})")
    if params.get("boosting", "gbdt") != "gbdt":
        raise CurationError(f"LightGBM boosting '{params['boosting']}' is not supported: influence needs boosting=gbdt")
    if params.get("data_sample_strategy", "bagging") == "goss":
        raise CurationError("LightGBM data_sample_strategy 'goss' is not supported: it reweights rows per tree")
    for key in _ZERO_PARAMS:
        if float(params.get(key, 0) or 0) != 0:
            raise CurationError(f"LightGBM {key}={params[key]} is not supported: Newton leaf values need {key}=0")
    for key in _ONE_PARAMS:
        if float(params.get(key, 1)) != 1:
            raise CurationError(f"LightGBM {key}={params[key]} is not supported: Newton leaf values need {key}=1")
    if params.get("linear_tree") or params.get("is_unbalance"):
        raise CurationError("LightGBM linear_tree / is_unbalance are not supported by tree influence")
    return objective


def _leaf_values(text: str) -> list[np.ndarray]:
    """Per tree, the leaf outputs in leaf-index order, read from LightGBM's text model format (``num_class``,
    ``Tree=``, ``leaf_value=`` lines); much faster than ``dump_model``'s JSON of every node."""
    values: list[np.ndarray] = []
    for line in text.splitlines():
        if line.startswith("num_class=") and int(line.split("=", 1)[1]) != 1:
            raise CurationError("multiclass LightGBM models are not supported by tree influence (one output only)")
        if line.startswith("leaf_value="):
            values.append(np.array(line.split("=", 1)[1].split(), dtype=np.float64))
        elif line.startswith("end of trees"):
            break
    return values


def ensemble_from_lightgbm(booster: Any, y_train: np.ndarray) -> TreeEnsemble:
    """The ``TreeEnsemble`` of a fitted ``lightgbm.Booster``; ``y_train`` sets the base score that LightGBM's
    ``boost_from_average`` folded into the first tree (logit or mean of the training labels)."""
    import lightgbm

    text = booster.model_to_string()
    params = lightgbm.Booster(model_str=text).params  # canonical names, defaults filled in
    objective = _check_params(params)
    leaf_values = _leaf_values(text)
    bias = 0.0
    if params.get("boost_from_average", True) and len(y_train):
        mean = float(np.mean(y_train))
        if objective == "binary":
            mean = min(max(mean, 1e-15), 1 - 1e-15)
            bias = float(np.log(mean / (1.0 - mean)))
        else:
            bias = mean
        if leaf_values and abs(bias) > 1e-15:
            leaf_values[0] = leaf_values[0] - bias
    return TreeEnsemble(objective=objective, learning_rate=float(params.get("learning_rate", 0.1)),
                        l2=float(params.get("lambda_l2", 0.0) or 0.0), bias=bias, leaf_values=tuple(leaf_values),
                        leaves_of=lambda x: np.asarray(booster.predict(x, pred_leaf=True), dtype=np.int64)
                        .reshape(len(x), -1))
