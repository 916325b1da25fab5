"""Benchmark: TiKMiX-D / TiKMiX-M vs uniform, natural and a RegMix-style baseline on the 6-domain shared corpus.

Protocol (methods spec §1.6, scaled to 2 shared CPU cores):
- data: ``multidomain_corpus`` documents split train/val by ``md5(doc_id) % 10 == 0``, chunked into 65-byte
  passages, at most ``--train-chunks`` training passages per domain; validation tasks = held-out passages of
  ``--tasks`` (default government, news, wiki, chosen before any run) — the other domains have no task.
- per seed: a short uniform-mixture run (``--stage1-steps``) gives the checkpoint at which group influence
  (identity Hessian, ``--tokens-per-domain``) is measured; TiKMiX-D optimises the mixture from it (prior =
  uniform, α = β = γ = 1). TiKMiX-M refines it with ``--proxies`` proxy runs (``--proxy-steps`` each, started
  from the stage-1 checkpoint); RegMix gets the same number and length of proxy runs (matched compute).
- ``--protocol staged`` (default; TiKMiX's own schedule): every mixture continues the stage-1 checkpoint for
  ``--steps`` more steps (batch 32 × 64 tokens), so all arms see the same token budget and differ only in the
  stage-2 mixture. ``--protocol scratch``: every mixture trains a fresh GPT for ``--steps``. Each arm is scored
  by the average validation loss over the tasks.
Writes ``benchmarks/mixture/results.json``.
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

from curation.mixture.group_influence import GroupInfluenceConfig, group_influence
from curation.mixture.labels import ProxyConfig, ProxyTrainingLabel, task_losses
from curation.mixture.regmix import RegMixConfig, regmix
from curation.mixture.surrogate import SurrogateConfig
from curation.mixture.tikmix_d import tikmix_d
from curation.mixture.tikmix_m import TikmixMConfig, tikmix_m
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.training.loop import TrainConfig, train
from curation.training.mixture_sampling import mixture_order, natural_mixture

CHUNK = 65


def chunk_corpus(path: Path, train_chunks: int, val_chunks: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Passages of CHUNK characters per document; hash split by doc_id; capped per domain."""
    corpus = pl.read_parquet(path, columns=["doc_id", "domain", "text"])
    rows = {"train": [], "val": []}
    for doc_id, domain, text in corpus.iter_rows():
        split = "val" if int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 10 == 0 else "train"
        for k in range(0, len(text) - CHUNK + 1, CHUNK):
            rows[split].append((f"{doc_id}#{k}", domain, text[k : k + CHUNK]))
    out = []
    for split, cap in (("train", train_chunks), ("val", val_chunks)):
        frame = pl.DataFrame(rows[split], schema=["example_id", "domain", "text"], orient="row")
        frame = frame.filter(pl.int_range(pl.len()).shuffle(seed=seed).over("domain") < cap)
        out.append(frame.sort("example_id"))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=["government", "news", "wiki"])
    ap.add_argument("--protocol", choices=["staged", "scratch"], default="staged",
                    help="staged: every mixture continues from the shared stage-1 checkpoint; scratch: fresh model")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--stage1-steps", type=int, default=100)
    ap.add_argument("--proxies", type=int, default=6)
    ap.add_argument("--proxy-steps", type=int, default=40)
    ap.add_argument("--tokens-per-domain", type=int, default=16384)
    ap.add_argument("--train-chunks", type=int, default=4000)
    ap.add_argument("--val-chunks", type=int, default=150)
    ap.add_argument("--out", default="benchmarks/mixture/results.json")
    ap.add_argument("--merge", nargs="+", default=[], help="summarise these per-seed result files instead of running")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
        write_summary({**parts[0], "seeds": [s for p in parts for s in p["seeds"]],
                       "seconds": sum(p["seconds"] for p in parts)}, args.out)
        return
    shared = Path(os.environ.get("CURATION_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    started = time.time()
    train_frame, val_frame = chunk_corpus(shared / "multidomain_corpus" / "corpus.parquet", args.train_chunks,
                                          args.val_chunks)
    val_frame = val_frame.filter(pl.col("domain").is_in(args.tasks))
    domains = sorted(train_frame["domain"].unique().to_list())
    full = pl.read_parquet(shared / "multidomain_corpus" / "corpus.parquet", columns=["domain", "n_chars"])
    nat = natural_mixture(full, size_column="n_chars")
    natural = np.array([nat[d] for d in domains])
    uniform = np.full(len(domains), 1 / len(domains))
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=2, n_head=4, d_model=128, block_size=CHUNK - 1))
    batch = 32

    def fit(weights: np.ndarray, steps: int, seed: int, state: dict | None = None) -> tuple[dict, torch.nn.Module]:
        cfg = TrainConfig(batch_size=batch, learning_rate=3e-3, warmup_steps=10, n_checkpoints=1,
                          eval_every=10**9, seed=seed)
        order_seed = seed + (1000 if state is not None else 0)  # stage 2 draws other rows than stage 1
        order = mixture_order(train_frame, dict(zip(domains, weights, strict=True)), steps * batch, seed=order_seed)
        torch.manual_seed(seed)
        model = adapter.build_model()
        if state is not None:
            model.load_state_dict(state)
        result = train(adapter, train_frame, cfg, order=order, model=model)
        return task_losses(adapter, result.model, val_frame, "domain", args.tasks), result.model

    per_seed = []
    for seed in args.seeds:
        t0 = time.time()
        _, stage1 = fit(uniform, args.stage1_steps, seed)
        state = {k: v.clone() for k, v in stage1.state_dict().items()}
        gi = group_influence(adapter, stage1, train_frame, val_frame,
                             GroupInfluenceConfig(tokens_per_domain=args.tokens_per_domain, seed=seed))
        d_sol = tikmix_d(gi.matrix, uniform, tasks=gi.tasks)
        proxy = ProxyConfig(draws=args.proxy_steps * batch,
                            train=TrainConfig(batch_size=batch, learning_rate=1e-3, schedule="constant",
                                              n_checkpoints=1, eval_every=10**9, seed=seed))
        labels = {}
        solutions = {"uniform": uniform, "natural": natural, "tikmix_d": d_sol.weights}
        for name, surrogate in (("tikmix_m", "ridge"), ("regmix", "ridge")):
            labeler = ProxyTrainingLabel(adapter, train_frame, val_frame, domains=domains, tasks=args.tasks,
                                         cfg=proxy, init_state=state)
            if name == "tikmix_m":
                sol = tikmix_m(d_sol.weights, labeler, TikmixMConfig(candidates=args.proxies, seed=seed,
                                                                     surrogate=SurrogateConfig(kind=surrogate)))
            else:
                sol = regmix(uniform, labeler, RegMixConfig(candidates=args.proxies, seed=seed,
                                                            surrogate=SurrogateConfig(kind=surrogate)))
            solutions[name] = sol.weights
            labels[name] = {"proxy_runs": len(labeler.runs), "proxy_rows": labeler.tokens_trained,
                            "best_candidate_loss": -float(max(sol.extras["labels"]))}
        results = {}
        for name, w in solutions.items():
            losses, _ = fit(w, args.steps, seed, state if args.protocol == "staged" else None)
            results[name] = {"weights": dict(zip(domains, np.round(w, 4).tolist(), strict=True)),
                             "task_losses": losses, "avg_loss": float(np.mean(list(losses.values())))}
            print(f"seed {seed} {name}: {results[name]['avg_loss']:.4f} {results[name]['weights']}", flush=True)
        per_seed.append({"seed": seed, "influence": {"tasks": gi.tasks, "domains": gi.domains,
                                                     "matrix": gi.matrix.tolist()},
                         "tikmix_d_success": d_sol.success, "proxies": labels, "results": results,
                         "seconds": round(time.time() - t0, 1)})
    write_summary({"protocol": vars(args), "domains": domains,
                   "natural": dict(zip(domains, natural.tolist(), strict=True)), "train_rows": train_frame.height,
                   "val_rows": val_frame.height, "seeds": per_seed, "seconds": round(time.time() - started, 1),
                   "threads": torch.get_num_threads()}, args.out)


def write_summary(out: dict, dest: str) -> None:
    """Add the across-seed summary (mean loss per mixture, TiKMiX-D's relative gain) and write the JSON."""
    per_seed = out["seeds"]
    names = list(per_seed[0]["results"])
    mean = {n: float(np.mean([s["results"][n]["avg_loss"] for s in per_seed])) for n in names}
    rel = {f"tikmix_d_vs_{b}": 1 - mean["tikmix_d"] / mean[b] for b in ("uniform", "natural")}
    out["summary"] = {
        "n_seeds": len(per_seed),
        "mean_avg_loss": mean,
        "relative_improvement_vs_uniform": {n: 1 - mean[n] / mean["uniform"] for n in names},
        "tikmix_d_relative_improvement": rel,
        "passes_2pct": all(v >= 0.02 for v in rel.values()),
        "tikmix_d_beats_uniform_every_seed": all(
            s["results"]["tikmix_d"]["avg_loss"] < s["results"]["uniform"]["avg_loss"] for s in per_seed),
    }
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out["summary"], indent=2))

if __name__ == "__main__":
    main()
