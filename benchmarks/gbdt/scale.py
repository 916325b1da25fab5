"""Time and peak memory of our tree influence methods from booster to matrix, as the Adult training set grows to
all 32,561 rows (100 seeded test rows, LightGBM defaults: 100 trees, 31 leaves, one thread), with the peer's BoostIn
(tree-influence 0.1.7, fit + get_local_influence, one thread) timed on the same booster at every size.

Peak memory is what tracemalloc traces during the call (numpy registers its buffers there), so it counts our
arrays, not the interpreter. LeafInfluence with ``update_set=-1`` is O(n^2 trees) in time; it runs up to
``--max-exact`` rows (memory stays O(chunk * n + n * queries)).

Run: ``python -m benchmarks.gbdt.scale`` -> results/scale.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.gbdt.common import adult, ensemble, measure, ours, run_peer, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000,32561")
    parser.add_argument("--max-exact", type=int, default=8000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    x_all, y_all, x_test, y_test = adult()
    rng = np.random.default_rng(args.seed)
    test_rows = rng.choice(len(y_test), args.n_test, replace=False)
    x_test, y_test = x_test[test_rows], y_test[test_rows]
    order = rng.permutation(len(y_all))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        x, y = x_all[order[:n]], y_all[order[:n]]
        with tempfile.TemporaryDirectory() as tmp:
            peer, booster = run_peer(Path(tmp), x, y, x_test, y_test, "boostin")
        row = {"n_train": n, "peer_boostin_s": float(peer["fit_s"] + peer["local_s"])}
        methods = ["boostin", "trex", "leaf_influence_0"] + (["leaf_influence_-1"] if n <= args.max_exact else [])
        for method in methods:
            def run(method: str = method, booster=booster, x=x, y=y) -> np.ndarray:
                ens = ensemble(booster, y)
                return ours(method, ens, ens.trajectory(x, y), ens.trajectory(x_test, y_test))[0]

            _, seconds, peak = measure(run)
            row[f"{method}_s"], row[f"{method}_peak_mib"] = seconds, peak
        row["boostin_over_peer"] = row["boostin_s"] / row["peer_boostin_s"]
        print(row, flush=True)
        rows.append(row)
    print(write_json(f"scale{args.tag}.json", {"setup": {"n_test": args.n_test, "seed": args.seed, "threads": 1,
                                              "trees": 100, "num_leaves": 31}, "rows": rows}))


if __name__ == "__main__":
    main()
