"""Label-noise detection (spec section 5, multi-test): flip 10% of the Adult training labels (seeded), fit the
booster on the noisy labels (LightGBM defaults: 100 trees, 31 leaves; seed 0, one thread), rank training rows by
self-influence (BoostIn, TREX, LeafInfluence update_set=0) and compare with cleanlab 2.9.0 (its own venv) on the
same booster settings' 5-fold cross-validated probabilities: average precision for the flipped rows, the share of
flipped rows found when inspecting the top {5, 10, 20, 30}%, and test accuracy / log-loss after the flipped rows
among the top 10% are fixed and the booster is retrained.

Run: ``python -m benchmarks.gbdt.noise [--n-train 32561]`` -> results/noise.json.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

from benchmarks.gbdt.common import CLEANLAB_PYTHON, adult, ensemble, fit_booster, ours, write_json
from curation.gbdt.losses import Loss

INSPECT = (0.05, 0.1, 0.2, 0.3)


def cross_validated_probabilities(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    p = np.zeros(len(y))
    for k in range(folds):
        booster = fit_booster(x[fold != k], y[fold != k])
        p[fold == k] = booster.predict(x[fold == k])
    return np.stack([1 - p, p], axis=1)


def cleanlab_scores(labels: np.ndarray, pred_probs: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", labels=labels, pred_probs=pred_probs)
        subprocess.run([str(CLEANLAB_PYTHON), str(Path(__file__).parent / "cleanlab_worker.py"),
                        str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.npz")], check=True, capture_output=True)
        return dict(np.load(Path(tmp) / "out.npz"))


def evaluate(score: np.ndarray, flipped: np.ndarray, x, y_noisy, y_clean, x_test, y_test) -> dict:
    truth = np.zeros(len(y_noisy), dtype=bool)
    truth[flipped] = True
    order = np.argsort(-score, kind="stable")
    found = {str(f): float(truth[order[: int(f * len(score))]].sum() / truth.sum()) for f in INSPECT}
    fixed = y_noisy.copy()
    top = order[: int(0.1 * len(score))]
    fixed[top] = y_clean[top]  # an inspector corrects the wrong labels among the top 10%
    raw = fit_booster(x, fixed).predict(x_test, raw_score=True)
    return {"average_precision": float(average_precision_score(truth, score)), "fraction_found": found,
            "test_accuracy_after_fix": float(np.mean((raw > 0) == y_test)),
            "test_logloss_after_fix": float(Loss("binary").value(y_test, raw).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=32561)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x, y_clean, x_test, y_test = adult()
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(y_clean), args.n_train, replace=False) if args.n_train < len(y_clean) else np.arange(len(y_clean))
    x, y_clean = x[rows], y_clean[rows]
    flipped = rng.choice(len(y_clean), int(args.noise * len(y_clean)), replace=False)
    y = y_clean.copy()
    y[flipped] = 1 - y[flipped]
    booster = fit_booster(x, y)
    raw = booster.predict(x_test, raw_score=True)
    result = {"setup": {"n_train": len(y), "noise": args.noise, "folds": args.folds, "seed": args.seed,
                        "trees": 100, "num_leaves": 31, "chance_ap": args.noise},
              "noisy_test_accuracy": float(np.mean((raw > 0) == y_test)),
              "noisy_test_logloss": float(Loss("binary").value(y_test, raw).mean()), "methods": {}}
    ens = ensemble(booster, y)
    for method in ("boostin", "trex", "leaf_influence_0"):
        start = time.perf_counter()
        score = ours(method, ens, ens.trajectory(x, y), None)[1]
        seconds = time.perf_counter() - start
        result["methods"][method] = {"seconds": seconds, **evaluate(score, flipped, x, y, y_clean, x_test, y_test)}
        print(method, result["methods"][method], flush=True)
    start = time.perf_counter()
    probs = cross_validated_probabilities(x, y, args.folds, args.seed)
    cv_s = time.perf_counter() - start
    cl = cleanlab_scores(y, probs)
    entry = evaluate(1 - cl["quality"], flipped, x, y, y_clean, x_test, y_test)
    issues = cl["is_issue"].astype(bool)
    entry.update({"seconds": cv_s + float(cl["seconds"]), "cross_validation_s": cv_s,
                  "find_label_issues_count": int(issues.sum()),
                  "find_label_issues_precision": float(np.isin(np.flatnonzero(issues), flipped).mean()),
                  "find_label_issues_recall": float(np.isin(flipped, np.flatnonzero(issues)).mean())})
    result["methods"]["cleanlab_self_confidence"] = entry
    print("cleanlab", entry, flush=True)
    print(write_json("noise.json", result))


if __name__ == "__main__":
    main()
