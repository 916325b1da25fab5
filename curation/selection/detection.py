"""How well a ranking finds known label errors: average precision, AUROC, precision at the flagged fraction,
and the precision-recall curve (for reports). ``known`` are the example ids that really are errors."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def detection_metrics(scores: pl.DataFrame, known: Iterable, *, fraction: float) -> dict[str, float]:
    """``scores`` (``example_id, score``; higher = more suspicious) against the ids in ``known``."""
    truth, score = _truth(scores, known)
    k = max(1, int(np.ceil(fraction * len(score))))
    top = np.argsort(-score, kind="stable")[:k]
    return {
        "average_precision": float(average_precision_score(truth, score)),
        "auroc": float(roc_auc_score(truth, score)),
        "precision_at_fraction": float(truth[top].mean()),
        "recall_at_fraction": float(truth[top].sum() / max(truth.sum(), 1)),
        "known_errors": float(truth.sum()),
    }


def pr_curve(scores: pl.DataFrame, known: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """``(recall, precision)`` arrays of the ranking."""
    truth, score = _truth(scores, known)
    precision, recall, _ = precision_recall_curve(truth, score)
    return recall, precision


def _truth(scores: pl.DataFrame, known: Iterable) -> tuple[np.ndarray, np.ndarray]:
    known_set = set(known)
    truth = np.array([e in known_set for e in scores["example_id"].to_list()])
    if not truth.any() or truth.all():
        raise ValueError("known errors must include some but not all scored examples")
    return truth, scores["score"].to_numpy().astype(np.float64)
