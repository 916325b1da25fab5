"""Small float64 classifier problems with domains and validation tasks, shared by the mixture tests."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_digits

from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.training import TrainConfig, train

# digits grouped into three "domains" by class; the validation task "low" is held-out digits 0-2
GROUPS = {"low": (0, 1, 2), "mid": (3, 4, 5), "high": (6, 7, 8, 9)}


def _group(label: int) -> str:
    return next(name for name, members in GROUPS.items() if label in members)


@pytest.fixture(scope="session")
def digits_domains() -> tuple[pl.DataFrame, pl.DataFrame]:
    """sklearn's bundled digits (real data), features in [0, 1], with ``domain`` = class group; 75/25 split."""
    data = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.target))
    frame = pl.DataFrame({
        "example_id": [f"d{i}" for i in idx],
        "features": (data.data[idx] / 16.0).tolist(),
        "label": data.target[idx].astype(np.int64),
        "domain": [_group(int(y)) for y in data.target[idx]],
    })
    cut = int(0.75 * frame.height)
    return frame[:cut], frame[cut:]


@pytest.fixture(scope="session")
def mlp64(digits_domains):
    """A float64 MLP trained briefly (uniform order) on the digits domains."""
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=64, n_classes=10, hidden=(32,), dtype="float64"))
    train_frame, _ = digits_domains
    result = train(adapter, train_frame, TrainConfig(epochs=1.0, batch_size=32, optimizer="sgd", learning_rate=0.1,
                                                     n_checkpoints=1, eval_every=10**6, seed=0))
    return adapter, result.model
