"""Regression surrogates ``y = f(w)`` over mixtures, shared by TiKMiX-M and the RegMix baseline.

``lightgbm`` is the paper's choice (optional extra ``gbdt``); ``ridge`` (quadratic features + cross-validated ridge,
scikit-learn) is the lighter fallback and fits the few labels a CPU budget affords better. ``auto`` picks LightGBM
when it is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from curation.errors import MissingExtraError

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class SurrogateConfig:
    """Which regressor and its settings."""

    kind: str = field(default="auto", metadata={"help": "auto, lightgbm or ridge"})
    num_leaves: int = field(default=15, metadata={"help": "LightGBM num_leaves"})
    n_estimators: int = field(default=300, metadata={"help": "LightGBM trees"})
    learning_rate: float = field(default=0.05, metadata={"help": "LightGBM learning rate"})
    min_child_samples: int = field(default=3, metadata={"help": "LightGBM minimum rows per leaf (few labels on CPU)"})

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "lightgbm", "ridge"):
            raise ValueError(f"kind must be auto, lightgbm or ridge, got {self.kind!r}")


def resolved_kind(cfg: SurrogateConfig) -> str:
    """``lightgbm`` or ``ridge`` (``auto`` = LightGBM when importable)."""
    if cfg.kind != "auto":
        return cfg.kind
    return "lightgbm" if importlib.util.find_spec("lightgbm") else "ridge"


def fit_surrogate(x: np.ndarray, y: np.ndarray, cfg: SurrogateConfig, *, seed: int = 0) -> Predictor:
    """Fit the regressor on mixtures ``x`` (``[n, domains]``) and labels ``y``; return its ``predict``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if resolved_kind(cfg) == "lightgbm":
        try:
            import lightgbm
        except ImportError:
            raise MissingExtraError("surrogate kind 'lightgbm' needs LightGBM: pip install 'curation[gbdt]'") from None
        model = lightgbm.LGBMRegressor(num_leaves=cfg.num_leaves, n_estimators=cfg.n_estimators,
                                       learning_rate=cfg.learning_rate, min_child_samples=cfg.min_child_samples,
                                       random_state=seed, n_jobs=1, verbose=-1)
    else:
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        model = make_pipeline(PolynomialFeatures(2), StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    model.fit(x, y)
    return lambda w: np.asarray(model.predict(np.atleast_2d(w)), dtype=np.float64)
