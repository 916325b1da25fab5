"""Small LightGBM boosters for the tree influence tests (sklearn's bundled breast-cancer table; no download)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer

from curation.gbdt.ensemble import TreeEnsemble
from curation.gbdt.lightgbm_ensemble import ensemble_from_lightgbm

PARAMS = {"objective": "binary", "num_leaves": 8, "learning_rate": 0.1, "lambda_l2": 1.0, "min_data_in_leaf": 5,
          "num_threads": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}


def breast_cancer(seed: int, n_train: int = 300, n_test: int = 10, flip: float = 0.0):
    """Shuffled train/test split; with ``flip`` a seeded fraction of training labels flipped (returns their rows)."""
    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order].astype(np.float64)
    y_train = y[:n_train].copy()
    flipped = np.random.default_rng(seed + 1000).choice(n_train, int(flip * n_train), replace=False)
    y_train[flipped] = 1 - y_train[flipped]
    return x[:n_train], y_train, x[n_train:n_train + n_test], y[n_train:n_train + n_test], flipped


def fit(x: np.ndarray, y: np.ndarray, *, seed: int = 0, rounds: int = 20, **params) -> tuple[object, TreeEnsemble]:
    """A LightGBM booster and its ``TreeEnsemble``."""
    import lightgbm

    booster = lightgbm.train({**PARAMS, "seed": seed, **params}, lightgbm.Dataset(x, y), num_boost_round=rounds)
    return booster, ensemble_from_lightgbm(booster, y)
