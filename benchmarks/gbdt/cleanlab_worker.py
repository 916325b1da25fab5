"""Runs INSIDE the cleanlab 2.9.0 peer venv (never imported by the project): label-quality scores of the given
labels from cross-validated probabilities (npz: labels, pred_probs) -> npz (quality, is_issue,
is_issue_confident_learning, seconds).

    /work/peers/cleanlab/bin/python benchmarks/gbdt/cleanlab_worker.py in.npz out.npz
"""

import sys
import time

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

data = np.load(sys.argv[1])
labels, pred_probs = data["labels"].astype(int), data["pred_probs"]
start = time.perf_counter()
quality = get_label_quality_scores(labels, pred_probs)  # self_confidence, cleanlab's default
is_issue = find_label_issues(labels, pred_probs)  # confident learning, prune_by_noise_rate
seconds = time.perf_counter() - start
off_diagonal = find_label_issues(labels, pred_probs, filter_by="confident_learning")  # the confident joint's off-diagonal
np.savez(sys.argv[2], quality=quality, is_issue=is_issue, is_issue_confident_learning=off_diagonal, seconds=seconds)
