"""scikit-learn's bundled ``digits`` (1,797 8x8 images) with injected label noise whose ids are recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl


@dataclass(frozen=True, kw_only=True)
class DigitsConfig:
    """Split and noise settings."""

    test_fraction: float = field(default=0.2, metadata={"help": "held-out fraction (0.2 gives 1,437 / 360)"})
    noise_fraction: float = field(default=0.1, metadata={"help": "fraction of training labels flipped"})
    seed: int = field(default=0, metadata={"help": "seed for the split and the flips"})

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1 or not 0 <= self.noise_fraction < 1:
            raise ValueError("test_fraction must be in (0,1) and noise_fraction in [0,1)")


def build_digits(cfg: DigitsConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Return ``(train, test, noisy)``: features scaled to [0, 1]; ``noisy`` lists flipped ids with both labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float64)
    y = data.target.astype(np.int64)
    ids = np.array([f"digits-{i:04d}" for i in range(len(y))])
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=cfg.test_fraction, random_state=cfg.seed, stratify=y
    )
    rng = np.random.default_rng(cfg.seed)
    n_flip = round(cfg.noise_fraction * len(idx_train))
    flip = rng.choice(len(idx_train), size=n_flip, replace=False)
    noisy_y = y[idx_train].copy()
    noisy_y[flip] = (noisy_y[flip] + rng.integers(1, 10, size=n_flip)) % 10

    def frame(idx: np.ndarray, labels: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame(
            {"example_id": ids[idx], "features": x[idx].tolist(), "label": labels},
            schema={"example_id": pl.String, "features": pl.List(pl.Float64), "label": pl.Int64},
        )

    noisy = pl.DataFrame(
        {"example_id": ids[idx_train][flip], "true_label": y[idx_train][flip], "noisy_label": noisy_y[flip]}
    ).sort("example_id")
    return frame(idx_train, noisy_y), frame(idx_test, y[idx_test]), noisy
