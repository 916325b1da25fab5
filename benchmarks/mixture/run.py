"""Benchmark: TiKMiX-D / TiKMiX-M vs uniform, natural and a RegMix-style baseline on the 6-domain shared corpus.

Protocol (methods spec §1.6, scaled to 2 shared CPU cores):
- data: ``multidomain_corpus`` documents split train/val by ``md5(doc_id) % 10 == 0``, chunked into 65-byte
  passages, at most ``--train-chunks`` training passages per domain; validation tasks = held-out passages of
  ``--tasks`` (default government, news, wiki, chosen before any run) — the other domains have no task.
- per seed: a short uniform-mixture run (``--stage1-steps``) gives the checkpoint at which group influence
  (``--hessian``, EK-FAC since v3, identity in v2; ``--tokens-per-domain``) is measured; TiKMiX-D optimises the
  mixture from it (prior = uniform, α = β = γ = 1; ``--normalization`` prior_gain since v3, the paper's max in
  v2). TiKMiX-M refines it with ``--proxies`` proxy runs (``--proxy-steps`` each, started from the stage-1
  checkpoint); RegMix gets the same number and length of proxy runs (matched compute).
- ``--protocol staged`` (default; TiKMiX's own schedule): every mixture continues the stage-1 checkpoint for
  ``--steps`` more steps (batch 32 × 64 tokens), so all arms see the same token budget and differ only in the
  stage-2 mixture. ``--protocol scratch``: every mixture trains a fresh GPT for ``--steps``. Each arm is scored
  by the average validation loss over the tasks.
- learning rate (identical for every arm): one warmup-stable-decay schedule over both stages — stage 1 warms up
  over ``--warmup`` steps to ``--lr`` and stays there; stage 2 (a fresh AdamW, so its moments restart) warms up
  again over ``--stage2-warmup`` steps and decays by a cosine to 0.1 × ``--lr``. Proxy runs use the stage-2
  schedule, shortened to ``--proxy-steps``.
- additivity check (spec §1.6 check 3): ``--additivity`` random mixtures in the 0.5–2× box around the prior are
  realised as mixed samples of ``--tokens-per-domain`` tokens at the stage-1 checkpoint; Pearson of their measured
  influence against ``S·w`` per task (``curation.mixture.additivity``).
Order per seed: uniform, natural, TiKMiX-D, the additivity check, then TiKMiX-M and RegMix; the JSON is rewritten
after every arm. Arms of one seed can run in separate processes (``--arms``; stage 1 is recomputed identically)
and ``--merge`` joins the files by seed. Writes ``benchmarks/mixture/results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from curation.mixture.additivity import AdditivityConfig, additivity_check
from curation.mixture.group_influence import GroupInfluenceConfig, group_influence
from curation.mixture.hessian import HessianConfig
from curation.mixture.labels import ProxyConfig, ProxyTrainingLabel, task_losses
from curation.mixture.regmix import RegMixConfig, regmix
from curation.mixture.surrogate import SurrogateConfig
from curation.mixture.tikmix_d import TikmixDConfig, tikmix_d
from curation.mixture.tikmix_m import TikmixMConfig, tikmix_m
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.training.loop import TrainConfig, train
from curation.training.mixture_sampling import mixture_order, natural_mixture

CHUNK = 65
ARMS = ("uniform", "natural", "tikmix_d", "tikmix_m", "regmix", "tasks_only", "tikmix_d_paper", "tikmix_d_ekfac")
DEFAULT_ARMS = ARMS[:5]
# on request: tasks_only (uniform over the task domains only, a diagnostic reference); tikmix_d_paper (the paper's
# max normalisation on the same influence matrix); tikmix_d_ekfac (the --normalization on an EK-FAC influence
# matrix: the v3 exploration's arm when --hessian identity)


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
    ap.add_argument("--steps", type=int, default=800, help="stage-2 steps per arm")
    ap.add_argument("--stage1-steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (every arm, both stages)")
    ap.add_argument("--warmup", type=int, default=50, help="stage-1 linear warm-up steps")
    ap.add_argument("--stage2-warmup", type=int, default=30, help="stage-2 (and proxy) warm-up steps")
    ap.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS), help="mixtures to train")
    ap.add_argument("--proxies", type=int, default=8)
    ap.add_argument("--proxy-steps", type=int, default=40)
    ap.add_argument("--tokens-per-domain", type=int, default=65536)
    ap.add_argument("--hessian", choices=["identity", "ekfac"], default="ekfac",
                    help="inverse-Hessian approximation of the influence TiKMiX-D (and TiKMiX-M) use (v2: identity)")
    ap.add_argument("--normalization", choices=["max", "prior_gain"], default="prior_gain",
                    help="TiKMiX-D's per-task normalisation (v2 used max, the paper's)")
    ap.add_argument("--additivity", type=int, default=12,
                    help="random 0.5-2x-box mixtures realised as mixed samples for the additivity check (0 = skip)")
    ap.add_argument("--train-chunks", type=int, default=4000)
    ap.add_argument("--val-chunks", type=int, default=150)
    ap.add_argument("--out", default="benchmarks/mixture/results.json")
    ap.add_argument("--merge", nargs="+", default=[], help="summarise these per-seed result files instead of running")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
        write_summary({**parts[0], "seeds": merge_seeds(parts), "parts": [p["protocol"] for p in parts],
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

    def schedule(steps: int, seed: int, stage2: bool) -> TrainConfig:
        """Stage 1: warm-up then constant; stage 2 / proxies: short re-warm-up then cosine decay to 0.1 × lr."""
        if stage2 or args.protocol == "scratch":
            return TrainConfig(batch_size=batch, learning_rate=args.lr, schedule="cosine", n_checkpoints=1,
                               warmup_steps=min(args.stage2_warmup if stage2 else args.warmup, steps // 4),
                               eval_every=max(1, steps // 8), seed=seed)
        return TrainConfig(batch_size=batch, learning_rate=args.lr, schedule="constant", warmup_steps=args.warmup,
                           n_checkpoints=1, eval_every=max(1, steps // 4), seed=seed)

    def fit(weights: np.ndarray, steps: int, seed: int, state: dict | None = None) -> tuple[dict, torch.nn.Module, list]:
        cfg = schedule(steps, seed, state is not None)
        order_seed = seed + (1000 if state is not None else 0)  # stage 2 draws other rows than stage 1
        order = mixture_order(train_frame, dict(zip(domains, weights, strict=True)), steps * batch, seed=order_seed)
        torch.manual_seed(seed)
        model = adapter.build_model()
        if state is not None:
            model.load_state_dict(state)
        result = train(adapter, train_frame, cfg, order=order, model=model, val_frame=val_frame, show_progress=False)
        curve = [[int(r["step"]), round(r["train_loss"], 4), round(r["val_loss"], 4)]
                 for r in result.curve.iter_rows(named=True)]
        return task_losses(adapter, result.model, val_frame, "domain", args.tasks), result.model, curve

    per_seed: list[dict] = []

    def save(quiet: bool = True) -> None:
        write_summary({"protocol": vars(args), "domains": domains,
                       "natural": dict(zip(domains, natural.tolist(), strict=True)), "train_rows": train_frame.height,
                       "val_rows": val_frame.height, "seeds": per_seed, "seconds": round(time.time() - started, 1),
                       "threads": torch.get_num_threads()}, args.out, quiet=quiet)

    def run_seed(seed: int) -> None:
        """Stage 1, influence, the arms, the additivity check and the proxy-based arms of one seed."""
        t0 = time.time()
        stage1_losses, stage1, stage1_curve = fit(uniform, args.stage1_steps, seed)
        print(f"seed {seed} stage 1: {stage1_losses}", flush=True)
        state = {k: v.clone() for k, v in stage1.state_dict().items()}
        gi = group_influence(adapter, stage1, train_frame, val_frame, GroupInfluenceConfig(
            tokens_per_domain=args.tokens_per_domain, seed=seed, hessian=HessianConfig(kind=args.hessian)))
        d_cfg = TikmixDConfig(normalization=args.normalization)
        d_sol = tikmix_d(gi.matrix, uniform, d_cfg, tasks=gi.tasks)
        record = {"seed": seed, "stage1": {"task_losses": stage1_losses, "curve": stage1_curve},
                  "influence": {"tasks": gi.tasks, "domains": gi.domains, "matrix": gi.matrix.tolist()},
                  "additivity": None, "tikmix_d_success": d_sol.success, "proxies": {}, "results": {}}
        per_seed.append(record)
        tasks_only = np.array([1.0 if d in args.tasks else 0.0 for d in domains])
        solutions = {"uniform": uniform, "natural": natural, "tikmix_d": d_sol.weights,
                     "tasks_only": tasks_only / tasks_only.sum(),
                     "tikmix_d_paper": tikmix_d(gi.matrix, uniform, TikmixDConfig(normalization="max"),
                                                tasks=gi.tasks).weights}
        if "tikmix_d_ekfac" in args.arms:
            gi_ekfac = gi if args.hessian == "ekfac" else group_influence(
                adapter, stage1, train_frame, val_frame, GroupInfluenceConfig(
                    tokens_per_domain=args.tokens_per_domain, seed=seed, hessian=HessianConfig(kind="ekfac")))
            record["influence_ekfac"] = gi_ekfac.matrix.tolist()
            solutions["tikmix_d_ekfac"] = tikmix_d(gi_ekfac.matrix, uniform, d_cfg, tasks=gi.tasks).weights

        def run_arm(name: str) -> None:
            w = solutions[name]
            losses, _, curve = fit(w, args.steps, seed, state if args.protocol == "staged" else None)
            record["results"][name] = {"weights": dict(zip(domains, np.round(w, 4).tolist(), strict=True)),
                                       "task_losses": losses, "avg_loss": float(np.mean(list(losses.values()))),
                                       "curve": curve}
            print(f"seed {seed} {name}: {record['results'][name]['avg_loss']:.4f} "
                  f"{record['results'][name]['weights']}", flush=True)
            record["seconds"] = round(time.time() - t0, 1)
            save()  # partial results survive an interrupted run

        for name in ("uniform", "natural", "tikmix_d", "tasks_only", "tikmix_d_paper", "tikmix_d_ekfac"):
            if name in args.arms:
                run_arm(name)
        if args.additivity:
            add = additivity_check(adapter, stage1, train_frame, gi, uniform,
                                   AdditivityConfig(mixtures=args.additivity, seed=seed))
            record["additivity"] = {"pearson": add.pearson, "mean_pearson": add.mean_pearson,
                                    "pooled": add.pooled_pearson, "predicted": add.predicted.tolist(),
                                    "measured": add.measured.tolist(), "mixtures": add.mixtures.tolist(),
                                    "tokens": list(add.tokens)}
            print(f"seed {seed} additivity: {add.pearson} pooled {add.pooled_pearson:.3f}", flush=True)
            save()
        proxy_train = schedule(args.proxy_steps, seed, True)
        proxy = ProxyConfig(draws=args.proxy_steps * batch, train=dataclasses.replace(proxy_train, eval_every=10**9))
        for name in ("tikmix_m", "regmix"):
            if name not in args.arms:
                continue
            labeler = ProxyTrainingLabel(adapter, train_frame, val_frame, domains=domains, tasks=args.tasks,
                                         cfg=proxy, init_state=state)
            surrogate = SurrogateConfig(kind="ridge")
            if name == "tikmix_m":
                sol = tikmix_m(d_sol.weights, labeler, TikmixMConfig(candidates=args.proxies, seed=seed,
                                                                     surrogate=surrogate))
            else:
                sol = regmix(uniform, labeler, RegMixConfig(candidates=args.proxies, seed=seed, surrogate=surrogate))
            solutions[name] = sol.weights
            record["proxies"][name] = {"proxy_runs": len(labeler.runs), "proxy_rows": labeler.tokens_trained,
                                       "best_candidate_loss": -float(max(sol.extras["labels"]))}
            run_arm(name)

    for seed in args.seeds:
        run_seed(seed)
    save(quiet=False)


def merge_seeds(parts: list[dict]) -> list[dict]:
    """Per-seed records of several result files; files that ran other arms of the same seed are joined (their
    stage 1 and influence are identical: same seed, same data, deterministic CPU training)."""
    by_seed: dict[int, dict] = {}
    for part in parts:
        for rec in part["seeds"]:
            if rec["seed"] not in by_seed:
                by_seed[rec["seed"]] = json.loads(json.dumps(rec))
                continue
            into = by_seed[rec["seed"]]
            if not np.allclose(into["influence"]["matrix"], rec["influence"]["matrix"], rtol=1e-4, atol=1e-6):
                raise SystemExit(f"seed {rec['seed']}: influence differs between files; not the same stage 1")
            into["results"].update(rec["results"])
            into["proxies"].update(rec["proxies"])
            into["additivity"] = into.get("additivity") or rec.get("additivity")
            into["seconds"] = into.get("seconds", 0) + rec.get("seconds", 0)
    return [by_seed[k] for k in sorted(by_seed)]


def write_summary(out: dict, dest: str, *, quiet: bool = False) -> None:
    """Add the across-seed summary (mean loss per mixture over the arms every seed finished; TiKMiX-D's relative
    gain) and write the JSON."""
    per_seed = out["seeds"]
    names = [n for n in ARMS if all(n in s["results"] for s in per_seed)]
    mean = {n: float(np.mean([s["results"][n]["avg_loss"] for s in per_seed])) for n in names}
    base = [b for b in ("uniform", "natural") if b in mean]
    rel = {f"tikmix_d_vs_{b}": 1 - mean["tikmix_d"] / mean[b] for b in base} if "tikmix_d" in mean else {}
    pearsons = [s["additivity"]["mean_pearson"] for s in per_seed if s.get("additivity")]
    out["summary"] = {
        "n_seeds": len(per_seed),
        "additivity_mean_pearson": float(np.mean(pearsons)) if pearsons else None,
        "additivity_min_task_pearson": min((min(s["additivity"]["pearson"].values()) for s in per_seed
                                            if s.get("additivity")), default=None),
        "mean_avg_loss": mean,
        "relative_improvement_vs_uniform": {n: 1 - mean[n] / mean["uniform"] for n in names} if "uniform" in mean else {},
        "relative_improvement_vs_natural": {n: 1 - mean[n] / mean["natural"] for n in names} if "natural" in mean else {},
        "per_seed_relative_improvement_vs_uniform": {
            n: [1 - s["results"][n]["avg_loss"] / s["results"]["uniform"]["avg_loss"] for s in per_seed]
            for n in names} if "uniform" in mean else {},
        "tikmix_d_relative_improvement": rel,
        "passes_2pct": len(rel) == 2 and all(v >= 0.02 for v in rel.values()),
        "tikmix_d_beats_uniform_every_seed": all(
            s["results"]["tikmix_d"]["avg_loss"] < s["results"]["uniform"]["avg_loss"] for s in per_seed)
        if {"tikmix_d", "uniform"} <= set(mean) else None,
    }
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{dest}.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    tmp.replace(dest)
    if not quiet:
        print(json.dumps(out["summary"], indent=2))

if __name__ == "__main__":
    main()
