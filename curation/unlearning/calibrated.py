"""Reference-calibrated membership attack (methods spec section 3.1 "Reference", LiRA-offline style), its null
spread, and the forget-request size at which it has power.

A raw loss attack asks "is this row's loss low?"; on a model that generalises, per-row difficulty (easy digits,
mislabelled rows) dominates the answer, so members and non-members look alike. Calibration asks instead "is this
row's loss lower than under models trained *without* it?":

    score(x) = LL_candidate(x) - mean_k LL_calibration_k(x)

with ``LL`` the mean log-likelihood (``score_loss``) and the ``K`` calibration models trained without the forget
rows (the retrained reference and further retrains with other seeds). Difficulty cancels, a memorised row stands
out. The MIA AUC of this score, forget (positive) vs holdout rows, is 0.5 in expectation when the candidate is
itself an exact retrain (every model in the comparison then treats forget and holdout rows alike).

Null spread: the Mann-Whitney standard error of an AUC of 0.5 at the pool sizes, ``se = sqrt((n_f + n_h + 1) /
(12 n_f n_h))``, covers row sampling only; the candidate's and the calibration mean's own training noise add a
model-to-model part, modelled as ``se_cal = se * sqrt(1 + 1/K)``. Measured on the demo's digits MLP
(``benchmarks/unlearning/calibrated_null.py``: 100 forget, 360 holdout rows, 36 exact-retrain candidates each
calibrated by K other retrains): null AUC rms deviation / se = 1.19 (K = 1), 1.20 (K = 2), 1.08 (K = 3), 1.08
(K = 5) against the model's 1.41, 1.22, 1.15, 1.10.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl

from curation.unlearning.metrics import mia_auc, tpr_at_fpr


def calibrated_scores(candidate_ll: np.ndarray, calibration_ll: np.ndarray) -> np.ndarray:
    """``LL_candidate - mean_k LL_k`` per row; ``calibration_ll`` is ``[K, rows]`` (higher = more member-like)."""
    calibration_ll = np.atleast_2d(calibration_ll)
    if calibration_ll.shape[-1] != candidate_ll.shape[-1]:
        raise ValueError(f"{calibration_ll.shape[-1]} calibration rows for {candidate_ll.shape[-1]} candidate rows")
    return candidate_ll - calibration_ll.mean(axis=0)


def auc_null_se(n_forget: int, n_holdout: int) -> float:
    """Standard error of a Mann-Whitney AUC of 0.5 with ``n_forget`` positives and ``n_holdout`` negatives."""
    return math.sqrt((n_forget + n_holdout + 1) / (12 * n_forget * n_holdout))


def calibrated_null_se(n_forget: int, n_holdout: int, k: int) -> float:
    """Null spread of the calibrated AUC of an exact retrain: row sampling times ``sqrt(1 + 1/K)`` (model noise)."""
    if k < 1:
        raise ValueError(f"the calibrated attack needs at least one calibration model, got {k}")
    return auc_null_se(n_forget, n_holdout) * math.sqrt(1 + 1 / k)


def min_forget_rows(
    effect: float, n_holdout: int, k: int, *, noise_z: float, power_z: float, floor: float = 0.0
) -> float:
    """Smallest forget-request size at which a model with calibrated-AUC gap ``effect`` (AUC - 0.5, a per-row-pair
    quantity that does not shrink with the request) fails the calibrated criterion, whose threshold is
    ``max(floor, noise_z * se_cal(n))``, with power ``Phi(power_z)``: ``threshold + power_z * se_cal(n) <= effect``.
    ``inf`` when no size suffices (an effect at or below the floor, or a holdout pool too small on its own: then
    more holdout rows are needed too)."""
    if effect <= floor:
        return math.inf
    bound = effect / (noise_z + power_z)  # on se_cal(n)
    if power_z > 0:
        bound = min(bound, (effect - floor) / power_z)
    c = (bound / math.sqrt(1 + 1 / k)) ** 2  # bound on se(n)^2
    denominator = 12 * c * n_holdout - 1
    if denominator <= 0:
        return math.inf
    return float(math.ceil((n_holdout + 1) / denominator))


def calibrate_candidates(
    scores: pl.DataFrame, candidates: list[str], retrains: list[str],
    col: Callable[[str, str, str], np.ndarray], metrics: dict[str, float],
) -> pl.DataFrame:
    """Reference-calibrated MIA of every candidate against the retrains other than itself: AUC, TPR at 1 % and 5 %
    FPR, the number of calibration models and the null spread into ``metrics``; the per-row calibrated scores
    (forget and holdout rows of the candidates) as a ``score_calibrated`` column of ``scores``."""
    frames = []
    for candidate in candidates:
        calibrators = [r for r in retrains if r != candidate]
        if not calibrators:
            continue
        split_scores = {
            split: calibrated_scores(col(candidate, split, "score_loss"),
                                     np.stack([col(r, split, "score_loss") for r in calibrators]))
            for split in ("forget", "holdout")
        }
        f, h = split_scores["forget"], split_scores["holdout"]
        metrics[f"mia_auc_calibrated_{candidate}"] = mia_auc(f, h)
        metrics[f"mia_tpr_at_1fpr_calibrated_{candidate}"] = tpr_at_fpr(f, h, 0.01)
        metrics[f"mia_tpr_at_5fpr_calibrated_{candidate}"] = tpr_at_fpr(f, h, 0.05)
        metrics[f"calibration_models_{candidate}"] = float(len(calibrators))
        metrics[f"mia_auc_calibrated_null_se_{candidate}"] = calibrated_null_se(f.size, h.size, len(calibrators))
        for split, values in split_scores.items():
            ids = scores.filter((pl.col("model") == candidate) & (pl.col("split") == split))["example_id"]
            frames.append(pl.DataFrame({"model": candidate, "split": split, "example_id": ids,
                                        "score_calibrated": values}))
    if not frames:
        return scores.with_columns(score_calibrated=pl.lit(None, dtype=pl.Float64))
    return scores.join(pl.concat(frames), on=["model", "split", "example_id"], how="left")
