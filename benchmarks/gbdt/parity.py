"""BoostIn, LeafInfluence and TREX against their reference implementation, tree-influence 0.1.7, on one booster.

The peer (its own venv, /work/peers/tree-influence; its sdist ships without the ``_tree32/_tree64.pyx`` sources
that its setup.py cythonizes, so they were added from the project's repository before building there) fits an
LGBMClassifier (LightGBM defaults: 100 trees, 31 leaves; seed 0, one thread) on ``--n-train`` seeded Adult training
rows and saves the booster as LightGBM text; we load that file, so both sides explain the very same trees. For 100
seeded Adult test rows we compare the train x test influence matrices column by column (Spearman per test point:
median and minimum; max absolute difference) and time both, one thread each, in the same run: the peer's
``fit`` + ``get_local_influence`` against ours from booster to matrix (leaf extraction, gradients, scores).

LeafInfluence is also checked against actual leave-one-out refits with the tree structure fixed (every leaf value
recomputed without the row, later trees seeing the changed predictions) on ``--loo-train`` rows x 10 test rows.

Run: ``python -m benchmarks.gbdt.parity [--n-train 1600]`` -> results/parity.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from benchmarks.gbdt.common import PARAMS, adult, ensemble, measure, ours, run_peer, write_json
from curation.gbdt.refit import loo_loss_change

METHODS = (("boostin", "boostin", -1), ("leaf_influence_0", "leaf_influence", 0),
           ("leaf_influence_-1", "leaf_influence", -1), ("trex", "trex", -1))


def spearman_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([spearmanr(a[:, j], b[:, j])[0] for j in range(a.shape[1])])


def parity(n_train: int, n_test: int, seed: int, methods: list[str]) -> dict:
    x, y, x_test, y_test = adult()
    rng = np.random.default_rng(seed)
    rows, test_rows = rng.choice(len(y), n_train, replace=False), rng.choice(len(y_test), n_test, replace=False)
    x, y, x_test, y_test = x[rows], y[rows], x_test[test_rows], y_test[test_rows]
    out = {}
    for name, peer_method, update_set in METHODS:
        if name not in methods:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            peer, booster = run_peer(Path(tmp), x, y, x_test, y_test, peer_method, update_set=update_set)

        def score(booster=booster, name: str = name) -> np.ndarray:
            ens = ensemble(booster, y)
            return ours(name, ens, ens.trajectory(x, y), ens.trajectory(x_test, y_test))[0]

        matrix, seconds, peak = measure(score)
        rho = spearman_columns(matrix, peer["matrix"])
        peer_s = float(peer["fit_s"] + peer["local_s"])
        out[name] = {"spearman_median": float(np.median(rho)), "spearman_min": float(np.min(rho)),
                     "max_abs_diff": float(np.max(np.abs(matrix - peer["matrix"]))),
                     "max_abs_value": float(np.max(np.abs(peer["matrix"]))),
                     "ours_s": seconds, "ours_peak_mib": peak, "peer_fit_s": float(peer["fit_s"]),
                     "peer_local_s": float(peer["local_s"]), "peer_s": peer_s, "ours_over_peer": seconds / peer_s,
                     "speedup": peer_s / seconds}
        print(name, out[name], flush=True)
    return out


def loo_check(n_train: int, n_test: int, seed: int) -> dict:
    """Pearson of LeafInfluence with fixed-structure leave-one-out refits, per test point (ours and the peer's)."""
    x, y, x_test, y_test = adult()
    rng = np.random.default_rng(seed + 1)
    rows, test_rows = rng.choice(len(y), n_train, replace=False), rng.choice(len(y_test), n_test, replace=False)
    x, y, x_test, y_test = x[rows], y[rows], x_test[test_rows], y_test[test_rows]
    params = {**PARAMS, "n_estimators": 30, "num_leaves": 8, "min_child_samples": 5, "reg_lambda": 1.0}
    with tempfile.TemporaryDirectory() as tmp:
        peer, booster = run_peer(Path(tmp), x, y, x_test, y_test, "leaf_influence", update_set=-1, params=params)
    ens = ensemble(booster, y)
    train, queries = ens.trajectory(x, y), ens.trajectory(x_test, y_test)
    loo = np.stack([loo_loss_change(ens, train.leaves, y, queries.leaves, y_test, i) for i in range(n_train)])
    out = {"n_train": n_train, "n_test": n_test, "trees": 30, "num_leaves": 8}
    for name, matrix in (("ours_update_set_-1", ours("leaf_influence_-1", ens, train, queries)[0]),
                         ("ours_update_set_0", ours("leaf_influence_0", ens, train, queries)[0]),
                         ("peer_update_set_-1", peer["matrix"]), ("ours_boostin", ours("boostin", ens, train, queries)[0])):
        r = np.array([pearsonr(matrix[:, j], loo[:, j])[0] for j in range(n_test)])
        out[name] = {"pearson_median": float(np.median(r)), "pearson_min": float(np.min(r))}
    print("loo", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1600)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--loo-train", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(m for m, _, _ in METHODS))
    parser.add_argument("--skip-loo", action="store_true", help="skip the leave-one-out check")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    result = {"setup": {"n_train": args.n_train, "n_test": args.n_test, "seed": args.seed, "params": PARAMS,
                        "peer": "tree-influence 0.1.7", "threads": 1},
              "loo_fixed_structure": None if args.skip_loo else loo_check(args.loo_train, 10, args.seed),
              "methods": parity(args.n_train, args.n_test, args.seed, args.methods.split(","))}
    print(write_json(f"parity_{args.n_train}{args.tag}.json", result))


if __name__ == "__main__":
    main()
