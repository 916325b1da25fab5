"""Benchmark: target-domain validation NLL of a byte GPT trained at equal tokens on DSIR-, BETR-, BM25-, Quad-
selected and random data (issue 15 part 1; methods spec §10, §11, §13).

Protocol (fixed before any run):
- data: ``multidomain_corpus`` documents cut into ``CHUNK``-character passages; documents are split by
  ``md5(doc_id) % 10``: 0 = validation, 1 = target examples, the rest = the pool. The *target examples*
  (``--target-examples`` passages of the target domain's split-1 documents) are all a method sees of the target;
  validation = ``--val`` passages of the target domain's split-0 documents (never in the pool, never a target
  example). The pool = ``--pool`` passages drawn at random from the pool documents of all six domains (natural
  mixture: the target domain is a small share).
- every arm keeps ``--keep`` passages (the Selector, ``curation.selection.selector``, dedup on): random (seeded
  random scores, top-k), DSIR (``select_dsir``: Gumbel top-k importance resampling, hashed 1-2-grams,
  ``min_example_length`` lowered to 1 word because passages are short), BETR (``betr``, top-k), BM25 (``bm25``,
  top-k), Quad (``quad`` bandit with EK-FAC influence at the random arm's final model; its training is not counted
  in Quad's time) and, as references, ``target_first`` (every target-domain passage of the pool first, then random
  ones: an oracle) and ``random_b`` (a second random draw, selection seed + 100: how far two random selections
  differ, i.e. the noise floor of the comparison).
- each arm trains a fresh byte GPT (same architecture, init seed, schedule and ``--steps`` x 32 passages, i.e.
  equal tokens) on its kept passages and is scored by the mean per-byte NLL on the validation passages.
- reported per arm and seed: NLL, % lower than random, target-domain share of the kept passages, KL reduction on
  DSIR's hashed n-gram features with its Laplace-smoothed KL (``KL(target || pool) - KL(target || kept)``; a kept
  set is a tenth of the pool, so its sparser counts make this negative even for random data:
  ``kl_reduction_vs_random`` = ``KL(target || random kept) - KL(target || kept)`` compares equal-size sets),
  selection and training seconds.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.selection.nll_benchmark`` (one seed ~12-15 min on 2 shared cores);
more seeds or arms: ``--seeds 1 --out ...`` then ``--merge`` the files (arms of one seed are joined). Writes
``benchmarks/selection/results/nll.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from curation.attribution.base import CheckpointModel
from curation.io import write_json
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.betr import BETRConfig, BETRScorer
from curation.selection.bm25 import BM25Config, BM25Scorer
from curation.selection.dsir import DSIRConfig, kl_reduction, select_dsir
from curation.selection.embedding import EmbeddingConfig
from curation.selection.hashed_ngrams import hashed_ngrams
from curation.selection.quad import QuadConfig, QuadSelector
from curation.selection.selector import Selector, SelectorConfig
from curation.training.loop import TrainConfig, evaluate_loss, learning_rate_at, train

CHUNK = 65
ARMS = ("random", "dsir", "betr", "bm25", "quad", "target_first", "random_b")
BUCKETS = 10_000


def split_of(doc_id: str) -> int:
    return int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 10


def load_tables(shared: Path, target: str, n_pool: int, n_target: int, n_val: int,
                seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(pool, target examples, validation)`` passages as described in the module docstring."""
    corpus = pl.read_parquet(shared / "multidomain_corpus" / "corpus.parquet", columns=["doc_id", "domain", "text"])
    rows = []
    for doc_id, domain, text in corpus.iter_rows():
        part = split_of(doc_id)
        rows += [(f"{doc_id}#{k}", domain, text[k : k + CHUNK], part) for k in range(0, len(text) - CHUNK + 1, CHUNK)]
    frame = pl.DataFrame(rows, schema=["example_id", "domain", "text", "part"], orient="row")
    pool = frame.filter(pl.col("part") >= 2).sample(n_pool, seed=seed).drop("part")
    examples = frame.filter((pl.col("part") == 1) & (pl.col("domain") == target)).sample(n_target, seed=seed)
    val = frame.filter((pl.col("part") == 0) & (pl.col("domain") == target)).sample(n_val, seed=seed)
    return pool, examples.drop("part"), val.drop("part")


def select(arm: str, pool: pl.DataFrame, examples: pl.DataFrame, keep: int, seed: int, target: str,
           proxy: torch.nn.Module | None, adapter: ByteGPTAdapter, proxy_lr: float) -> tuple[np.ndarray, dict]:
    """Boolean keep mask over the pool and the arm's figures."""
    selector = Selector(SelectorConfig(budget="count", value=keep, method="topk", seed=seed))
    figures: dict = {}
    if arm in ("random", "random_b"):
        rng = np.random.default_rng(seed + (100 if arm == "random_b" else 0))
        scores = pl.DataFrame({"example_id": pool["example_id"], "score": rng.random(pool.height),
                               "text": pool["text"]})
        return selector.select(scores)["keep"].to_numpy(), figures
    if arm == "target_first":
        scores = pool.select("example_id", "text", score=(pl.col("domain") == target).cast(pl.Float64)
                             + pl.Series(np.random.default_rng(seed).random(pool.height)) * 0.5)
        return selector.select(scores)["keep"].to_numpy(), figures
    if arm == "dsir":
        result = select_dsir(pool, examples, keep, method="gumbel", seed=seed,
                             dsir=DSIRConfig(min_example_length=1))
        return result.selection["keep"].to_numpy(), {"dsir_kl_reduction": result.kl_reduction}
    embedding = EmbeddingConfig(seed=seed)
    if arm == "quad":
        quad = QuadSelector(QuadConfig(embedding=embedding, keep_fraction=keep / pool.height, seed=seed,
                                       block_size=max(1, keep // 30)))
        result = quad.score(pool, examples, adapter=adapter, checkpoints=[CheckpointModel(model=proxy,
                                                                                        learning_rate=proxy_lr)])
        kept = ~result.issues["is_off_target_issue"].to_numpy()
        return kept, {k: v for k, v in result.summary.to_dicts()[0].items()
                      if k in ("iterations", "rows_scored", "clusters_selected")}
    scorer = (BETRScorer(BETRConfig(embedding=embedding, seed=seed)) if arm == "betr"
              else BM25Scorer(BM25Config(seed=seed)))
    result = scorer.score(pool, examples)
    figures = {k: v for k, v in result.summary.to_dicts()[0].items() if k in ("classifier_heldout_auroc",)}
    return selector.select(result.scores.with_columns(pool["text"]))["keep"].to_numpy(), figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="wiki")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--pool", type=int, default=30000, help="pool passages (natural domain mixture)")
    ap.add_argument("--keep", type=int, default=3000, help="passages every arm keeps")
    ap.add_argument("--target-examples", type=int, default=200)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--steps", type=int, default=300, help="training steps per arm (batch 32)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", default="benchmarks/selection/results/nll.json")
    ap.add_argument("--merge", nargs="+", default=[], help="join per-seed result files instead of running")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
        runs: dict[int, dict] = {}
        for part in parts:  # arms of one seed join; a later file's arm replaces an earlier one
            for run in part["runs"]:
                runs.setdefault(run["seed"], {**run, "arms": {}})["arms"].update(run["arms"])
        merged = summarise({**parts[0], "runs": [runs[s] for s in sorted(runs)], "merged_from": args.merge})
        write_json(merged, args.out)
        print(json.dumps(merged["summary"], indent=1))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    shared = Path(os.environ.get("CURATION_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=2, n_head=4, d_model=128, block_size=CHUNK - 1))
    batch = 32
    report: dict = {"protocol": vars(args), "chunk": CHUNK, "model": "byte GPT 2x128, block 64", "runs": []}
    for seed in args.seeds:
        pool, examples, val = load_tables(shared, args.target, args.pool, args.target_examples, args.val, seed)
        target_counts = hashed_ngrams(examples["text"], num_buckets=BUCKETS).counts(BUCKETS)
        pool_features = hashed_ngrams(pool["text"], num_buckets=BUCKETS)
        pool_counts = pool_features.counts(BUCKETS)
        val_batch = adapter.collate(val)
        run = {"seed": seed, "pool_target_share": float((pool["domain"] == args.target).mean()), "arms": {}}
        report["runs"].append(run)
        proxy = None
        cfg = TrainConfig(epochs=args.steps * batch / args.keep, batch_size=batch, learning_rate=args.lr,
                          warmup_steps=30, n_checkpoints=1, eval_every=10**9, seed=seed)
        for arm in args.arms:
            if arm == "quad" and proxy is None:
                raise SystemExit("the quad arm needs the random arm first (its model is Quad's proxy)")
            t0 = time.perf_counter()
            kept, figures = select(arm, pool, examples, args.keep, seed, args.target, proxy, adapter,
                                   learning_rate_at(cfg, args.steps - 1, args.steps))
            t1 = time.perf_counter()
            result = train(adapter, pool.filter(pl.Series(kept)), cfg, show_progress=False)
            t2 = time.perf_counter()
            if arm == "random":
                proxy = result.model
            nll = evaluate_loss(adapter, result.model, val_batch)
            run["arms"][arm] = {
                "nll": nll, "kept": int(kept.sum()),
                "target_share": float((pool.filter(pl.Series(kept))["domain"] == args.target).mean()),
                "kl_reduction": kl_reduction(target_counts, pool_counts, pool_features.counts(BUCKETS, kept)),
                "select_seconds": round(t1 - t0, 1), "train_seconds": round(t2 - t1, 1), **figures,
            }
            print(f"seed {seed} {arm}: {run['arms'][arm]}", flush=True)
            write_json(summarise(report), args.out)


def summarise(report: dict) -> dict:
    """Per arm: mean NLL, mean % lower than random (per seed), mean target share, KL reduction and seconds."""
    summary = {}
    arms = {a for r in report["runs"] for a in r["arms"]}
    for arm in sorted(arms):
        rows = [r for r in report["runs"] if arm in r["arms"]]
        gains = [100 * (1 - r["arms"][arm]["nll"] / r["arms"]["random"]["nll"]) for r in rows if "random" in r["arms"]]
        summary[arm] = {
            "seeds": [r["seed"] for r in rows],
            "nll": float(np.mean([r["arms"][arm]["nll"] for r in rows])),
            "pct_lower_than_random": float(np.mean(gains)) if gains else None,
            "pct_lower_per_seed": [round(g, 2) for g in gains],
            "target_share": float(np.mean([r["arms"][arm]["target_share"] for r in rows])),
            "kl_reduction": float(np.mean([r["arms"][arm]["kl_reduction"] for r in rows])),
            "kl_reduction_vs_random": float(np.mean([r["arms"][arm]["kl_reduction"] - r["arms"]["random"]["kl_reduction"]
                                                     for r in rows])) if gains else None,
            "select_seconds": float(np.mean([r["arms"][arm]["select_seconds"] for r in rows])),
            "train_seconds": float(np.mean([r["arms"][arm]["train_seconds"] for r in rows])),
        }
    return {**report, "summary": summary}


if __name__ == "__main__":
    main()
