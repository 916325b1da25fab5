"""Estimator trust on the real multi-domain corpus: is TracIn / ReTrac / TRAK's top-k more than text similarity?

A small byte-level GPT is trained (curation.training.loop, 3 checkpoints) on 128-byte passages from three domains
of ``multidomain_corpus`` (code, legal, news; train and query passages from disjoint documents). The three influence
methods of the score_influence stage rank the training passages for each query; ``curation.attribution.trust``
compares them with each other and with BM25, TF-IDF cosine and final-checkpoint gradient cosine, and measures each
ranking's top-k domain purity (the planted ground-truth proxy: a query's helpful passages should mostly be from
its own domain). Several seeds (passage samples and model init).

    python -m benchmarks.influence.trust_multidomain [--seeds 0 1 2]

Writes benchmarks/influence/results/trust_multidomain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from curation.attribution import trust
from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.attribution.trak import TRAKConfig, TRAKScorer
from curation.gradients.projection import ProjectionConfig
from curation.models.checkpoints import load_checkpoint
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.training.loop import TrainConfig, train

DOMAINS = ("code", "legal", "news")
PASSAGE = 128
K = 10
OUT = Path(__file__).parent / "results" / "trust_multidomain.json"


def passages(corpus: pl.DataFrame, seed: int, n_train: int, n_query: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per domain, ``n_train`` training and ``n_query`` query passages from disjoint documents."""
    rng = np.random.default_rng(seed)
    train_rows, query_rows = [], []
    for domain in DOMAINS:
        docs = corpus.filter((pl.col("domain") == domain) & (pl.col("text").str.len_chars() > 2 * PASSAGE))
        docs = docs.sample(fraction=1.0, shuffle=True, seed=seed)["text"].to_list()
        for i, doc in enumerate(docs[: n_train + n_query]):
            start = int(rng.integers(0, len(doc) - PASSAGE))
            rows = train_rows if i < n_train else query_rows
            rows.append({"example_id": f"{domain}-{i}", "domain": domain, "text": doc[start : start + PASSAGE]})
    return pl.DataFrame(train_rows), pl.DataFrame(query_rows)


def one_seed(corpus: pl.DataFrame, seed: int, n_train: int, n_query: int) -> dict:
    train_frame, queries = passages(corpus, seed, n_train, n_query)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=2, n_head=2, d_model=64, block_size=PASSAGE))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(adapter, train_frame, TrainConfig(epochs=4, batch_size=16, learning_rate=3e-3,
                                                         n_checkpoints=3, seed=seed),
                       checkpoint_dir=tmp, show_progress=False)
        models = []
        for ck in result.checkpoints:
            model = adapter.build_model()
            model.load_state_dict(load_checkpoint(Path(tmp) / ck["file"])[0])
            models.append(CheckpointModel(model=model.eval(), learning_rate=ck["learning_rate"]))
        ctx = ScoringContext(adapter=adapter, checkpoints=tuple(models), train=train_frame, queries=queries,
                             batch_size=16)
        projection = ProjectionConfig(kind="gaussian", dim=512, seed=0)
        store = str(Path(tmp) / "grads")
        tracin = TracInScorer(TracInConfig(normalize="none", projection=projection, store=store))
        scorers = {"tracin": tracin,
                   "retrac": TracInScorer(TracInConfig(normalize="both", projection=projection, store=store)),
                   "trak": TRAKScorer(TRAKConfig(output="loss", projection=projection, damping=1e-3, store=store))}
        matrices = {name: s.score(ctx).matrix for name, s in scorers.items()}
        train_g, query_g = tracin.gradient_features(ctx)
    texts = (train_frame["text"].to_list(), queries["text"].to_list())
    found = trust.assess(matrices, trust.baseline_matrices(*texts, train_g[-1], query_g[-1]), K,
                         train_domains=train_frame["domain"].to_list(), query_domains=queries["domain"].to_list())
    return {"seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "final_train_loss": float(result.curve["train_loss"].drop_nulls()[-1]),
            "agreement": found.agreement.to_dicts(), "purity": found.purity.to_dicts(), "verdicts": found.verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=60, help="training passages per domain")
    parser.add_argument("--n-query", type=int, default=4, help="query passages per domain")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    data = Path(os.environ.get("CURATION_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    corpus = pl.read_parquet(data / "multidomain_corpus" / "corpus.parquet", columns=["domain", "text"])
    runs = [one_seed(corpus, s, args.n_train, args.n_query) for s in args.seeds]
    summary = {}
    for name in ("tracin", "retrac", "trak", "bm25", "tfidf", "gradient_cosine"):
        values = [next(r["domain_purity"] for r in run["purity"] if r["ranking"] == name) for run in runs]
        summary[f"{name}_domain_purity_mean"] = float(np.mean(values))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"k": K, "domains": DOMAINS, "n_train_per_domain": args.n_train,
                               "n_query_per_domain": args.n_query, "summary": summary, "runs": runs}, indent=1))
    print(json.dumps(summary, indent=1))
    for run in runs:
        print(run["seed"], *run["verdicts"], sep="\n  ")


if __name__ == "__main__":
    main()
