"""Peak memory of DSIR over Parquet shards against the same pool scored as one in-memory frame.

Pool: the 350-word chunks of ``dsir_peer`` (10,455 pool chunks) repeated ``--copies`` times with distinct ids,
written as 20 Parquet files with 1,000-row row groups; target: the same 463 ``legal`` chunks. Each mode runs in a
fresh subprocess and reports its peak resident set (``ru_maxrss``) and seconds:

- ``imports``: Python with curation's DSIR and polars imported, nothing scored (the floor);
- ``shards``: ``DSIRScorer(shard_rows=2000).score(folder, target)`` -- reads 2,000 rows at a time;
- ``frame``: the whole pool read into one polars frame and scored as a single shard.

Both scoring modes must give the same weights (checked through a digest of the scores).

Run: ``python -m benchmarks.selection.dsir_memory`` -> results/dsir_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from benchmarks.selection.dsir_peer import chunk_corpus, split

OUT = Path(__file__).parent / "results" / "dsir_memory.json"
FILES, ROW_GROUP = 20, 1000

CHILD = """
import hashlib, resource, sys, time
import polars as pl
from curation.selection.dsir import DSIRConfig, DSIRScorer
mode, folder, target = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
digest = ""
if mode == "shards":
    scores = DSIRScorer(DSIRConfig(shard_rows=2000)).score(folder, target)
elif mode == "frame":
    pool = pl.read_parquet(folder + "/*.parquet")
    scores = DSIRScorer(DSIRConfig(shard_rows=pool.height)).score(pool, pl.read_parquet(target))
if mode != "imports":
    digest = hashlib.sha256(scores["score"].to_numpy().tobytes()).hexdigest()[:16]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - start, digest)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("CURATION_SHARED_DATA", "../shared/data"))
    ap.add_argument("--copies", type=int, default=5)
    args = ap.parse_args()
    pool, target = split(chunk_corpus(Path(args.shared) / "multidomain_corpus" / "corpus.parquet"))
    big = pl.concat([pool.with_columns(example_id=pl.lit(f"copy{c}/") + pl.col("example_id"))
                     for c in range(args.copies)])
    result: dict = {"pool_docs": big.height, "files": FILES, "row_group_rows": ROW_GROUP,
                    "pool_text_mb": big["text"].str.len_bytes().sum() / 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pool"
        folder.mkdir()
        per_file = -(-big.height // FILES)
        for index in range(FILES):
            big.slice(index * per_file, per_file).write_parquet(folder / f"part-{index:02d}.parquet",
                                                                 row_group_size=ROW_GROUP)
        target.write_parquet(Path(tmp) / "target.parquet")
        for mode in ("imports", "shards", "frame"):
            out = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder), str(Path(tmp) / "target.parquet")],
                                 check=True, capture_output=True, text=True).stdout.split()
            result[mode] = {"peak_rss_mb": float(out[0]), "seconds": float(out[1]), "scores_digest": out[2:]}
            print(mode, result[mode], flush=True)
    result["same_weights"] = result["shards"]["scores_digest"] == result["frame"]["scores_digest"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
