"""DSIR against its reference implementation, data-selection 1.0.3, on the same pool, target and settings.

Data: ``multidomain_corpus`` (six domains), each domain's documents concatenated in ``doc_id`` order and cut into
chunks of 350 whitespace words (equal lengths, as the DSIR README advises; about 11k chunks). Target: every 4th
``legal`` chunk; pool: every other chunk (so the target domain is planted in the pool at a known share).
Settings for both: wordpunct tokens, unigrams + bigrams, 10,000 buckets, ``min_example_length`` 100, raw model
fitted on up to 100,000 x 10,000 features ("auto"), ``top_k`` selection of ``K`` chunks without dedup.

Figures: Jaccard of the two top-k sets, Pearson of the log importance weights, docs/s of fit + weights for ours
(one process; polars may use both cores) and the peer (``num_proc`` = 2 processes) in the same run; KL(target ||
selection) on hashed features for our top-k and Gumbel picks, the peer's top-k and a uniformly random ``K`` eligible
chunks, the KL reduction against that random pick, and the target-domain share of each; and the same weights from
the Ray path (Ray tasks over 2,000-row shards, ``num_cpus`` 2), which must equal the local ones.

Run: ``python -m benchmarks.selection.dsir_peer`` (needs ``/work/peers/dsel``: ``python3 -m venv /work/peers/dsel &&
/work/peers/dsel/bin/pip install data-selection==1.0.3``) -> results/dsir_peer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from curation.executors import ExecutorConfig
from curation.selection.dsir import DSIRConfig, DSIRScorer, kl_divergence
from curation.selection.selector import Selector, SelectorConfig

OUT = Path(__file__).parent / "results" / "dsir_peer.json"
WORKER = Path(__file__).parent / "dsir_peer_worker.py"
CHUNK_WORDS, TARGET_DOMAIN, K = 350, "legal", 1000


def chunk_corpus(path: Path, words_per_chunk: int = CHUNK_WORDS) -> pl.DataFrame:
    """``example_id, domain, text``: every domain's text cut into chunks of ``words_per_chunk`` words."""
    corpus = pl.read_parquet(path, columns=["doc_id", "domain", "text"]).sort("doc_id")
    rows = []
    for domain in sorted(corpus["domain"].unique().to_list()):
        words = " ".join(corpus.filter(pl.col("domain") == domain)["text"].to_list()).split()
        for n, start in enumerate(range(0, len(words) - words_per_chunk + 1, words_per_chunk)):
            rows.append((f"{domain}/{n}", domain, " ".join(words[start:start + words_per_chunk])))
    return pl.DataFrame(rows, schema=["example_id", "domain", "text"], orient="row")


def split(chunks: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    is_target = (pl.col("domain") == TARGET_DOMAIN) & (pl.int_range(pl.len()).over("domain") % 4 == 0)
    return chunks.filter(~is_target), chunks.filter(is_target)


def run_peer(pool: pl.DataFrame, target: pl.DataFrame, python: Path, tmp: Path) -> tuple[dict, np.ndarray, float]:
    (tmp / "pool.jsonl").write_text("".join(json.dumps({"text": text, "row": row}) + "\n"
                                            for row, text in enumerate(pool["text"].to_list())))
    (tmp / "target.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in target["text"].to_list()))
    start = time.perf_counter()
    subprocess.run([str(python), str(WORKER), str(tmp / "pool.jsonl"), str(tmp / "target.jsonl"), str(tmp), str(K),
                    "2"], check=True, capture_output=True)
    wall = time.perf_counter() - start
    return json.loads((tmp / "peer.json").read_text()), np.load(tmp / "peer_log_weights.npy"), wall


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(len(a | b), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("CURATION_SHARED_DATA", "../shared/data"))
    ap.add_argument("--peer-python", default="/work/peers/dsel/bin/python")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    pool, target = split(chunk_corpus(Path(args.shared) / "multidomain_corpus" / "corpus.parquet"))
    with tempfile.TemporaryDirectory() as tmp:
        peer, peer_weights, peer_wall = run_peer(pool, target, Path(args.peer_python), Path(tmp))

    cfg = DSIRConfig()
    start = time.perf_counter()
    with DSIRScorer(cfg).fitted(pool, target) as run:
        ours_s = time.perf_counter() - start
        scores = run.scores.with_columns(text=pool["text"], domain=pool["domain"])
        picks = {}
        for name, method in (("topk", "topk"), ("gumbel", "gumbel")):
            sel = Selector(SelectorConfig(budget="count", value=K, method=method, dedup=False, seed=0)).select(scores)
            picks[name] = sel["keep"].to_numpy()
        rng = np.random.default_rng(0)
        random_keep = np.zeros(pool.height, dtype=bool)
        random_keep[rng.choice(np.flatnonzero(scores["eligible"].to_numpy()), K, replace=False)] = True
        peer_keep = np.zeros(pool.height, dtype=bool)
        peer_keep[peer["chosen_rows"]] = True
        picks["random"], picks["peer_topk"] = random_keep, peer_keep
        kl_to_target = {name: kl_divergence(run.fit.target_counts, run.counts(keep)) for name, keep in picks.items()}
        klr = {name: kl_to_target["random"] - kl for name, kl in kl_to_target.items() if name != "random"}
    ours_w = scores["score"].to_numpy()
    is_target = (pool["domain"] == TARGET_DOMAIN).to_numpy()
    result = {
        "pool_docs": pool.height, "target_docs": target.height, "k": K, "target_domain": TARGET_DOMAIN,
        "target_share_in_pool": float(is_target.mean()),
        "jaccard_topk": jaccard(set(np.flatnonzero(picks["topk"])), set(peer["chosen_rows"])),
        "weights_pearson": float(np.corrcoef(ours_w, peer_weights)[0, 1]),
        "weights_max_abs_diff": float(np.abs(ours_w - peer_weights).max()),
        "ours_fit_weights_s": ours_s,
        "peer_fit_s": peer["fit_s"], "peer_weights_s": peer["weights_s"], "peer_resample_s": peer["resample_s"],
        "peer_wall_s": peer_wall,
        "ours_docs_per_s": pool.height / ours_s,
        "peer_docs_per_s": pool.height / (peer["fit_s"] + peer["weights_s"]),
        "kl_to_target": kl_to_target,
        "kl_reduction_vs_random": klr,
        "target_precision": {name: float(is_target[keep].mean()) for name, keep in picks.items()},
    }
    result["speedup"] = result["ours_docs_per_s"] / result["peer_docs_per_s"]
    if not args.skip_ray:
        ray_cfg = DSIRConfig(shard_rows=2000, executor=ExecutorConfig(kind="ray", num_cpus=2))
        start = time.perf_counter()
        ray_scores = DSIRScorer(ray_cfg).score(pool, target)
        result["ray_s_including_startup"] = time.perf_counter() - start
        result["ray_weights_max_abs_diff"] = float(np.abs(ray_scores["score"].to_numpy() - ours_w).max())
        result["ray_same_ids"] = ray_scores["example_id"].equals(scores["example_id"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
