"""Label errors from a table alone: cross-fitted models, out-of-fold probabilities, confident-learning decisions.

A user with a labelled table and no checkpoints gets the same answer cleanlab's one call gives: split the rows
into ``folds`` stratified folds, train one model per fold on the other folds (with this project's training loop,
so any registered classifier adapter works), and predict each row with the model that never saw it. Every row's
score is ``1 - p_oof[given label]`` (cleanlab's "self-confidence" ranking, flipped so higher = more suspicious).

The decision is confident learning's: per class ``j`` the threshold ``t_j`` is the mean out-of-fold probability of
``j`` over the rows labelled ``j``; a row is an issue when some other class ``k`` reaches its threshold
(``p_k >= t_k``) and the most confident such class is not the given label. Rows whose given label is the model's
confident choice are never flagged, so a clean table yields few issues. This is cleanlab's
``find_label_issues(filter_by="confident_learning")`` (the confident joint's off-diagonal); cleanlab's default
``prune_by_noise_rate`` flags more rows (benchmarks/label_errors/cross_fit_digits.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
import torch
from sklearn.model_selection import StratifiedKFold

from curation.errors import DataContractError
from curation.models.base import ModelAdapter, require_kind
from curation.progress import progress_bar
from curation.training.loop import TrainConfig, train


@dataclass(frozen=True, kw_only=True)
class CrossFitConfig:
    """How the cross-fitted models are trained."""

    folds: int = field(default=5, metadata={"help": "stratified folds (each row is predicted by a model that never saw it)"})
    seed: int = field(default=0, metadata={"help": "seed of the fold split and of every fold's training"})
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=30, batch_size=64, optimizer="adamw", learning_rate=3e-3,
                                            weight_decay=1e-4, n_checkpoints=1),
        metadata={"help": "training of each fold's model"},
    )

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")


@dataclass(frozen=True)
class CrossFitResult:
    """Out-of-fold class probabilities ``[n, n_classes]`` and the given labels, in table order."""

    probabilities: np.ndarray
    labels: np.ndarray

    def scores(self) -> np.ndarray:
        """``1 - p_oof[given label]``: higher = more likely a label error."""
        return 1.0 - self.probabilities[np.arange(len(self.labels)), self.labels]

    def suggested_labels(self) -> np.ndarray:
        """The class the out-of-fold model finds most likely."""
        return self.probabilities.argmax(axis=1)

    def confident_issues(self) -> np.ndarray:
        """Confident-learning decision per row (see the module docstring)."""
        p, y = self.probabilities, self.labels
        n_classes = p.shape[1]
        thresholds = np.array([p[y == j, j].mean() if np.any(y == j) else np.inf for j in range(n_classes)])
        above = p >= thresholds[None, :]
        confident = np.where(above, p, -np.inf).argmax(axis=1)
        return above.any(axis=1) & (confident != y)


def cross_fit(adapter: ModelAdapter, frame: pl.DataFrame, cfg: CrossFitConfig, *, source: str) -> CrossFitResult:
    """Out-of-fold probabilities of every row of ``frame`` from ``cfg.folds`` models of ``adapter``."""
    classifier = require_kind(adapter, "classifier", what="cross-fitted label errors")
    labels = frame["label"].to_numpy().astype(np.int64)
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.min() < cfg.folds:
        rare = int(np.flatnonzero((counts > 0) & (counts < cfg.folds))[0])
        raise DataContractError(f"{source}: label {rare} has {counts[rare]} rows, fewer than the {cfg.folds} folds "
                                f"(lower --folds or add rows)")
    probabilities = np.zeros((frame.height, classifier.config.n_classes), dtype=np.float64)
    split = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    with progress_bar(total=cfg.folds, description="cross-fitting folds") as advance:
        for fold, (fit_rows, held_rows) in enumerate(split.split(np.zeros(len(labels)), labels)):
            fold_cfg = replace(cfg.train, seed=cfg.seed * 1000 + fold)
            model = train(classifier, frame[fit_rows], fold_cfg, show_progress=False).model
            with torch.no_grad():
                logits = classifier.logits(model, classifier.collate(frame[held_rows]))
            probabilities[held_rows] = torch.softmax(logits.double(), dim=-1).numpy()
            advance(1)
    return CrossFitResult(probabilities=probabilities, labels=labels)
