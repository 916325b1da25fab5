"""Gradient store at scale: peak RSS and wall time of ``GradientStore`` at 100k, 300k and 1M rows (issue 18).

Each size runs in a fresh subprocess (so ``ru_maxrss`` is that size's own peak): write the rows in shards of
``SHARD`` (random float32 features of width ``DIM`` and values, as ``featurize`` writes them: grads, values,
digests, done flags, each flushed), then reopen the store with a new object -- which re-hashes every row marked
done before trusting it -- and stream the features back (a sum over row blocks, as ``tracin_matrix`` reads them).
Linear scaling is checked as seconds per million rows at each size.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.gradient_store_scale``
(JSON in ``benchmarks/influence/results/gradient_store_scale.json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from curation.gradients.store import GradientStore
from curation.io import write_json

SIZES = (100_000, 300_000, 1_000_000)
DIM = 64
SHARD = 4096


def child(n: int, folder: str) -> dict:
    """Write, verify and read back an ``n``-row store under ``folder``; returns seconds and peak RSS."""
    meta = {"benchmark": "gradient_store_scale", "n": n}
    rng = np.random.default_rng(0)
    store = GradientStore(folder, meta, n_rows=n, dim=DIM)
    t0 = time.perf_counter()
    for start in range(0, n, SHARD):
        rows = min(SHARD, n - start)
        store.write("0", start, rng.standard_normal((rows, DIM), dtype=np.float32),
                    rng.standard_normal(rows, dtype=np.float32))
    t1 = time.perf_counter()
    reopened = GradientStore(folder, meta, n_rows=n, dim=DIM)
    complete = reopened.is_complete("0")  # re-hashes every done row
    t2 = time.perf_counter()
    grads = reopened.grads("0")
    total = np.zeros(DIM, dtype=np.float64)
    for start in range(0, n, 65536):
        total += grads[start : start + 65536].sum(0, dtype=np.float64)
    t3 = time.perf_counter()
    return {"rows": n, "complete": bool(complete), "write_s": t1 - t0, "verify_s": t2 - t1, "read_s": t3 - t2,
            "total_s": t3 - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "bytes_on_disk": sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/influence/results/gradient_store_scale.json")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return
    rows = []
    for n in SIZES:
        with tempfile.TemporaryDirectory(prefix="store-scale-") as folder:
            done = subprocess.run([sys.executable, "-m", "benchmarks.influence.gradient_store_scale", "--child",
                                   str(n), "--folder", folder], check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["seconds_per_million_rows"] = row["total_s"] / n * 1e6
        rows.append(row)
        print(json.dumps(row))
    per_m = [r["seconds_per_million_rows"] for r in rows]
    write_json({"dim": DIM, "shard_rows": SHARD, "sizes": rows,
                "max_over_min_seconds_per_million_rows": max(per_m) / min(per_m),
                "peak_rss_mb_at_largest": rows[-1]["peak_rss_mb"]}, Path(args.out))


if __name__ == "__main__":
    main()
