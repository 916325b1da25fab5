"""Query latency of the gradient nearest-neighbour index at 100k stored examples (issue 16, item 5).

Features: 100,000 rows of width 1,024 drawn as a mixture of 200 Gaussian clusters (projected gradients of a
multi-domain pool cluster by domain/topic; pure isotropic noise is the worst case for ivf and is reported too).
Timed on one thread: a NumPy brute-force matmul per query (the baseline), faiss flat (exact) and faiss ivf
(nlist = 4 sqrt(n), nprobe 16 and 64); recall@10 of ivf against the exact neighbours.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.selection.targeted_nn_index`` -> results/targeted_nn_index.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from curation.gradients.nn_index import GradientNNIndex, NNIndexConfig

N, DIM, CLUSTERS, QUERIES, K = 100_000, 1024, 200, 100, 10
OUT = Path(__file__).parent / "results" / "targeted_nn_index.json"


def features(rng: np.random.Generator, clustered: bool) -> tuple[np.ndarray, np.ndarray]:
    if not clustered:
        return (rng.standard_normal((N, DIM), dtype=np.float32), rng.standard_normal((QUERIES, DIM), dtype=np.float32))
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    x = centres[rng.integers(0, CLUSTERS, N)] + 0.7 * rng.standard_normal((N, DIM), dtype=np.float32)
    q = centres[rng.integers(0, CLUSTERS, QUERIES)] + 0.7 * rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    return x, q


def per_query_ms(fn, queries: np.ndarray) -> float:
    fn(queries[:1])  # warm-up
    start = time.perf_counter()
    for row in queries:
        fn(row[None, :])
    return 1000 * (time.perf_counter() - start) / len(queries)


def run(clustered: bool) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)
    x, q = features(np.random.default_rng(0), clustered)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute_ms = per_query_ms(lambda r: np.argpartition(-(xn @ (r / np.linalg.norm(r)).T)[:, 0], K)[:K], q)
    t0 = time.perf_counter()
    flat = GradientNNIndex(x, NNIndexConfig(kind="flat"))
    flat_build = time.perf_counter() - t0
    exact, _ = flat.search(q, K)
    out = {"numpy_brute_force_ms_per_query": brute_ms, "flat": {"build_s": flat_build,
                                                               "ms_per_query": per_query_ms(lambda r: flat.search(r, K), q)}}
    for nprobe in (16, 64):
        t0 = time.perf_counter()
        ivf = GradientNNIndex(x, NNIndexConfig(kind="ivf", nprobe=nprobe))
        build = time.perf_counter() - t0
        found, _ = ivf.search(q, K)
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact, strict=True)]))
        out[f"ivf_nprobe{nprobe}"] = {"build_s": build, "ms_per_query": per_query_ms(lambda r, i=ivf: i.search(r, K), q),
                                      "recall_at_10": recall}
    return out


def main() -> None:
    result = {"n_rows": N, "dim": DIM, "k": K, "queries": QUERIES, "threads": 1,
              "clustered": run(True), "isotropic": run(False)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
