"""Losses of single-output boosted models, with the derivatives the tree influence methods need.

Binary log-loss on the raw score ``f`` (log-odds): ``g = p - y``, ``h = p(1-p)``, ``t = p(1-p)(1-2p)``.
Squared error (LightGBM ``regression``, ``0.5 (f - y)^2``): ``g = f - y``, ``h = 1``, ``t = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from curation.errors import CurationError

OBJECTIVES = ("binary", "regression")


@dataclass(frozen=True)
class Loss:
    """Per-example loss and its first three derivatives in the raw score."""

    objective: str

    def value(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        if self.objective == "binary":
            return np.logaddexp(0.0, raw) - y * raw
        return 0.5 * (raw - y) ** 2

    def gradient(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        return expit(raw) - y if self.objective == "binary" else raw - y

    def derivatives(self, y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gradient, hessian, third derivative)`` at ``raw``."""
        if self.objective == "binary":
            p = expit(raw)
            h = p * (1.0 - p)
            return p - y, h, h * (1.0 - 2.0 * p)
        return raw - y, np.ones_like(raw), np.zeros_like(raw)


def loss_for(objective: str) -> Loss:
    """The ``Loss`` of a supported objective; anything else is a one-line error."""
    if objective not in OBJECTIVES:
        raise CurationError(f"tree influence supports objectives {', '.join(OBJECTIVES)}; got '{objective}'")
    return Loss(objective)
