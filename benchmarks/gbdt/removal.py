"""Single-test removal evaluation (Brophy et al. 2023, spec section 5): for each of 100 seeded Adult test rows,
remove its top {0.1, 0.5, 1, 2}% most helpful training rows by each method (or as many random rows), retrain the
booster from scratch with the same settings, and measure the change of that test row's log-loss. A better method
raises the loss more. Training set: ``--n-train`` seeded Adult rows; LightGBM defaults (100 trees, 31 leaves),
seed 0, one thread.

Run: ``python -m benchmarks.gbdt.removal`` -> results/removal.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.gbdt.common import adult, ensemble, fit_booster, ours, write_json
from curation.gbdt.losses import Loss

FRACTIONS = (0.001, 0.005, 0.01, 0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--methods", default="boostin,trex,leaf_influence_0,leaf_influence_-1,random")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x, y, x_test, y_test = adult()
    rng = np.random.default_rng(args.seed)
    rows, test_rows = rng.choice(len(y), args.n_train, replace=False), rng.choice(len(y_test), args.n_test, replace=False)
    x, y, x_test, y_test = x[rows], y[rows], x_test[test_rows], y_test[test_rows]
    loss = Loss("binary")
    booster = fit_booster(x, y)
    base = loss.value(y_test, booster.predict(x_test, raw_score=True))
    ens = ensemble(booster, y)
    train, queries = ens.trajectory(x, y), ens.trajectory(x_test, y_test)
    result = {"setup": {"n_train": args.n_train, "n_test": args.n_test, "seed": args.seed, "fractions": FRACTIONS,
                        "trees": 100, "num_leaves": 31},
              "base_mean_loss": float(base.mean()), "methods": {}}
    for method in args.methods.split(","):
        start = time.perf_counter()
        if method == "random":
            matrix = np.random.default_rng(args.seed + 1).random((len(y), len(y_test)))
        else:
            matrix = ours(method, ens, train, queries)[0]
        score_s = time.perf_counter() - start
        order = np.argsort(-matrix, axis=0, kind="stable")
        changes = np.zeros((len(FRACTIONS), len(y_test)))
        for t in range(len(y_test)):
            for f, fraction in enumerate(FRACTIONS):
                keep = np.ones(len(y), dtype=bool)
                keep[order[: max(1, round(fraction * len(y))), t]] = False
                retrained = fit_booster(x[keep], y[keep])
                raw = retrained.predict(x_test[t:t + 1], raw_score=True)
                changes[f, t] = loss.value(y_test[t:t + 1], raw)[0] - base[t]
        result["methods"][method] = {
            "score_s": score_s,
            "mean_loss_increase": {str(fr): float(changes[f].mean()) for f, fr in enumerate(FRACTIONS)},
            "median_loss_increase": {str(fr): float(np.median(changes[f])) for f, fr in enumerate(FRACTIONS)},
            "per_test_point": changes.tolist()}
        print(method, result["methods"][method]["mean_loss_increase"], flush=True)
    methods = result["methods"]
    if "random" in methods:
        random_changes = np.array(methods["random"]["per_test_point"])
        for entry in methods.values():
            entry["share_above_random"] = {
                str(fr): float(np.mean(np.array(entry["per_test_point"])[f] > random_changes[f]))
                for f, fr in enumerate(FRACTIONS)}
    print(write_json("removal.json", result))


if __name__ == "__main__":
    main()
