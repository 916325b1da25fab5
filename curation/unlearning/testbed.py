"""A small CPU testbed with real memorisation, for unlearning ground-truth tests and benchmarks.

MLP: an MLP is overfit on 400 scikit-learn digits of which ``noise`` (20 %) carry a random wrong label: such rows are
memorised only when trained on, so a member/non-member gap exists that an exact retrain removes. Holdout (500)
and validation (300) rows come from the same noisy distribution and are never trained on. ``reference`` and
``retrained`` are two exact unlearnings (retrain on the retain rows) with different seeds.

GPT: a small byte-level GPT trained for many epochs on 80 passages of 64 characters of Python's bundled
reference documentation (``pydoc_data``), 40 of them to forget; 120 holdout and 40 validation passages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch
from torch import nn

from curation.models.base import ModelAdapter
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.training import TrainConfig, train

TRAIN_CFG = TrainConfig(epochs=150, batch_size=32, optimizer="adamw", learning_rate=3e-3, schedule="constant",
                        n_checkpoints=1, eval_every=10**6, seed=0)


@dataclass
class Setting:
    """Pools and models of one testbed seed."""

    adapter: ModelAdapter
    train: pl.DataFrame
    forget: pl.DataFrame
    retain: pl.DataFrame
    holdout: pl.DataFrame
    validation: pl.DataFrame
    original: nn.Module
    reference: nn.Module
    retrained: nn.Module
    train_cfg: TrainConfig


def noisy_digits(seed: int, noise: float = 0.2) -> pl.DataFrame:
    """All 1,797 digits (features in [0, 1]) in a seeded random order, a ``noise`` fraction relabelled wrongly."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    y = data.target.copy()
    flip = rng.random(len(y)) < noise
    y[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    frame = pl.DataFrame({"example_id": [f"d{i:04d}" for i in range(len(y))],
                          "features": (data.data / 16.0).tolist(), "label": y})
    return frame[rng.permutation(len(y)).tolist()]


def build_setting(seed: int, *, n_train: int = 400, n_forget: int = 100) -> Setting:
    """Train the original model and two exact retrains for testbed ``seed``."""
    torch.manual_seed(seed)
    frame = noisy_digits(seed)
    train_rows = frame[:n_train]
    holdout, validation = frame[n_train : n_train + 500], frame[n_train + 500 : n_train + 800]
    forget, retain = train_rows[:n_forget], train_rows[n_forget:]
    adapter = MLPClassifierAdapter(ClassifierConfig(hidden=(256,)))
    cfg = replace(TRAIN_CFG, seed=seed)
    original = train(adapter, train_rows, cfg, show_progress=False).model
    reference = train(adapter, retain, replace(cfg, seed=seed + 100), show_progress=False).model
    retrained = train(adapter, retain, replace(cfg, seed=seed + 200), show_progress=False).model
    return Setting(adapter, train_rows, forget, retain, holdout, validation, original, reference, retrained, cfg)


GPT_TRAIN_CFG = TrainConfig(epochs=60, batch_size=8, optimizer="adamw", learning_rate=3e-3, schedule="constant",
                            n_checkpoints=1, eval_every=10**6, seed=0)


def doc_passages(seed: int, *, length: int = 64, count: int = 240) -> pl.DataFrame:
    """``count`` disjoint ``length``-character passages of the bundled Python reference docs, in seeded order."""
    from pydoc_data.topics import topics

    text = " ".join(" ".join(topics[k] for k in sorted(topics)).split())
    passages = [text[i : i + length] for i in range(0, length * count, length)]
    order = np.random.default_rng(seed).permutation(count)
    return pl.DataFrame({"example_id": [f"p{i:04d}" for i in order], "text": [passages[i] for i in order]})


def build_gpt_setting(seed: int, *, n_train: int = 80, n_forget: int = 40) -> Setting:
    """Train a small byte GPT to memorise passages, plus two exact retrains, for testbed ``seed``."""
    torch.manual_seed(seed)
    frame = doc_passages(seed)
    train_rows = frame[:n_train]
    holdout, validation = frame[n_train : n_train + 120], frame[n_train + 120 : n_train + 160]
    forget, retain = train_rows[:n_forget], train_rows[n_forget:]
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=2, n_head=4, d_model=64, block_size=64))
    cfg = replace(GPT_TRAIN_CFG, seed=seed)
    original = train(adapter, train_rows, cfg, show_progress=False).model
    reference = train(adapter, retain, replace(cfg, seed=seed + 100), show_progress=False).model
    retrained = train(adapter, retain, replace(cfg, seed=seed + 200), show_progress=False).model
    return Setting(adapter, train_rows, forget, retain, holdout, validation, original, reference, retrained, cfg)
