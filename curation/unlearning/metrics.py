"""Verification metrics from membership scores and losses: MIA AUC, TPR at low FPR, PrivLeak, KS forget quality.

Sign convention (methods spec section 0.2): every score is higher = more member-like, and the MIA AUC treats the
forget set as the positive class, so 0.5 = indistinguishable from never-seen data, above 0.5 = residual
memorisation, below 0.5 = over-unlearning (the forget set now looks *less* familiar than unseen data).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve


def mia_auc(forget_scores: np.ndarray, holdout_scores: np.ndarray) -> float:
    """ROC-AUC of ``score`` separating forget (positive) from holdout (negative) examples."""
    labels = np.r_[np.ones(len(forget_scores)), np.zeros(len(holdout_scores))]
    return float(roc_auc_score(labels, np.r_[forget_scores, holdout_scores]))


def tpr_at_fpr(forget_scores: np.ndarray, holdout_scores: np.ndarray, fpr: float) -> float:
    """True-positive rate at false-positive rate ``fpr``, linearly interpolated on the ROC curve."""
    labels = np.r_[np.ones(len(forget_scores)), np.zeros(len(holdout_scores))]
    fprs, tprs, _ = roc_curve(labels, np.r_[forget_scores, holdout_scores])
    return float(np.interp(fpr, fprs, tprs))


def privleak(auc_unlearned: float, auc_retrained: float) -> float:
    """MUSE PrivLeak in percent: ``(AUC_unlearned - AUC_retrained) / AUC_retrained * 100``; 0 is ideal.

    AUCs use our orientation (forget = positive, higher = leak); open-unlearning's default of 0.5 for the
    retrained AUC applies when no retrained reference exists.
    """
    return float((auc_unlearned - auc_retrained) / auc_retrained * 100.0)


def forget_quality(candidate: np.ndarray, reference: np.ndarray) -> float:
    """TOFU forget quality: two-sample Kolmogorov-Smirnov p-value between two per-example distributions.

    For non-QA data the distributions are per-example forget-set losses (``fq_ks_loss``), not truth ratios.
    """
    return float(stats.ks_2samp(candidate, reference).pvalue)
