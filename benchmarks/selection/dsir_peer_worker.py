"""Run data-selection 1.0.3 (the DSIR reference) on a pool and a target written as JSON lines; runs in the peer's own
venv (``/work/peers/dsel``), never imported by curation.

Usage: ``python dsir_peer_worker.py POOL.jsonl TARGET.jsonl OUT_DIR K NUM_PROC`` -> ``OUT_DIR/peer.json`` (seconds
for fit, weights and top-k resampling; the chosen pool row indices) and ``OUT_DIR/peer_log_weights.npy`` in pool
row order.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from data_selection import HashedNgramDSIR


def main() -> None:
    pool, target, out, k, num_proc = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    dsir = HashedNgramDSIR([pool], [target], cache_dir=str(out / "cache"), num_proc=num_proc)
    start = time.perf_counter()
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    fitted = time.perf_counter()
    dsir.compute_importance_weights()
    weighted = time.perf_counter()
    dsir.resample(out_dir=str(out / "topk"), num_to_sample=k, cache_dir=str(out / "topk_cache"), top_k=True)
    resampled = time.perf_counter()
    # data-selection shards a file virtually: shard j of P holds rows j, j + P, ...
    shards = dsir._get_virtually_sharded_datasets(dsir.raw_datasets)
    parts = [np.load(dsir.log_importance_weights_dir / f"{s['overall_idx']}.npy") for s in shards]
    weights = np.zeros(sum(len(p) for p in parts))
    for s, part in zip(shards, parts):
        weights[s["shard_idx"]::s["num_shards"]] = part
    np.save(out / "peer_log_weights.npy", weights)
    chosen = [json.loads(line)["row"] for f in sorted((out / "topk").glob("*.jsonl"))
              for line in f.read_text().splitlines()]
    (out / "peer.json").write_text(json.dumps({"fit_s": fitted - start, "weights_s": weighted - fitted,
                                               "resample_s": resampled - weighted, "chosen_rows": sorted(chosen)}))


if __name__ == "__main__":
    main()
