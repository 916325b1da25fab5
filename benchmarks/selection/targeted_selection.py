"""Targeted data selection on the six-domain corpus (issue 16, item 6; methods spec sections 6-9, 12, 14).

Setup (all seeded):
- Pool: ``PER_DOMAIN`` chunks of ``CHUNK`` characters from each of the six domains of
  shared/data/multidomain_corpus (documents hashed 80/20 into pool / held-out documents per domain).
- Target tasks: five domains (code, government, legal, news, wiki), ``N_TARGETS`` target chunks each and
  ``N_EVAL`` evaluation chunks each, all from held-out documents. Difficulty differs by domain (base losses).
- Base model: a byte GPT pre-trained on books chunks that are not in the pool, so every task is new to it.
- Each method selects 5% of the pool; a copy of the base model is fine-tuned on the selection for ``STEPS`` steps
  (AdamW, batch ``BATCH``; the full-pool run gets the same number of steps) for each of ``SEEDS``; reported:
  mean evaluation loss per task, its mean and worst task, and the selection's domain mix.

Methods: random 5%, full pool, LESS, LESS with z-scored columns, BIDS, GIST, TAROT (fixed 5% and OTM with its
estimated ratio), BM25 and character-n-gram embedding similarity (the text baselines), MATES (one-step probes on
20% of the pool -> MLP) with the probe oracle itself, NN-CIFT (LESS values of 20% of the pool -> pairwise MLP),
(also with the base model's mean hidden state added to its embedding), and the task-agnostic DEALRec / IDEAL for
reference.

Run: ``OMP_NUM_THREADS=2 python -m benchmarks.selection.targeted_selection`` -> results/targeted_selection.json.

Every run saves all keep masks (and the random 5% mask of each seed) to results/targeted_selection_masks.npz;
``--reuse-masks`` loads them instead of recomputing features and the probe oracle (the expensive part) and checks
that the pool and the retrained base model are identical to the run that saved them. The fine-tuning recipe can
be changed without touching the selections: ``--epochs-on-selection E`` fine-tunes every selection (random and
the full pool included) for ``ceil(E * rows / BATCH)`` steps, i.e. E passes over its rows, instead of the fixed
``STEPS``; ``--seeds N`` uses fine-tuning seeds 0..N-1. A non-default recipe writes its own JSON
(targeted_selection_e4_s5.json for ``--epochs-on-selection 4 --seeds 5``), so the published one stays.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from curation.gradients.featurize import frame_digest, state_digest
from curation.io import write_json
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.selector import Selector, SelectorConfig
from curation.selection.targeted.bids import BIDSConfig, BIDSSelector, zscore_columns
from curation.selection.targeted.dealrec import DEALRecConfig, DEALRecSelector
from curation.selection.targeted.features import FeatureConfig, compute_features
from curation.selection.targeted.gist import GISTConfig, gist_coordinates, gist_scores
from curation.selection.targeted.ideal import IDEALConfig, IDEALSelector
from curation.selection.targeted.less import less_scores
from curation.selection.targeted.predictors import (
    MATESPredictor,
    NNCIFTPredictor,
    PredictorConfig,
    one_step_probe_labels,
    spearman,
    text_embeddings,
)
from curation.selection.targeted.scores import TargetedScores
from curation.selection.targeted.tarot import TAROTConfig, TAROTSelector
from curation.selection.targeted.warmup import WarmupConfig, warmup_lora
from curation.training.loop import TrainConfig, train

QUICK = "--quick" in sys.argv
DOMAINS = ["books", "code", "government", "legal", "news", "wiki"]
TASKS = ["code", "government", "legal", "news", "wiki"]
CHUNK = 96
PER_DOMAIN = 60 if QUICK else 250
N_TARGETS, N_EVAL = 8, 40
FRACTION = 0.05
STEPS, BATCH = (20, 8) if QUICK else (80, 16)
SEEDS = [0] if QUICK else [0, 1]
BASE_STEPS = 50 if QUICK else 400
RESULTS = Path(__file__).parent / "results"
MASKS = RESULTS / ("targeted_selection_masks_quick.npz" if QUICK else "targeted_selection_masks.npz")
GPT = ByteGPTConfig(n_layer=2, n_head=4, d_model=96, block_size=CHUNK)


def shared_data() -> Path:
    root = Path(os.environ.get("CURATION_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    return root / "multidomain_corpus" / "corpus.parquet"


def _held_out(doc_id: str) -> bool:
    return hashlib.sha1(doc_id.encode()).digest()[0] < 52  # about 20% of documents


def chunks(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` random ``CHUNK``-character windows (starting at a word boundary) from the concatenated ``texts``."""
    joined = "\n".join(texts)
    out = []
    while len(out) < n:
        start = int(rng.integers(0, max(1, len(joined) - 2 * CHUNK)))
        start = joined.find(" ", start) + 1
        piece = joined[start:start + CHUNK]
        if len(piece.strip()) > CHUNK // 2:
            out.append(piece)
    return out


def build_data() -> dict[str, pl.DataFrame]:
    corpus = pl.read_parquet(shared_data()).with_columns(
        held=pl.col("doc_id").map_elements(_held_out, return_dtype=pl.Boolean))
    rng = np.random.default_rng(0)
    pool, targets, evals = [], [], []
    for d in DOMAINS:
        docs = corpus.filter(pl.col("domain") == d)
        pool += [(d, t) for t in chunks(docs.filter(~pl.col("held"))["text"].to_list(), PER_DOMAIN, rng)]
        if d in TASKS:
            held = chunks(docs.filter(pl.col("held"))["text"].to_list(), N_TARGETS + N_EVAL, rng)
            targets += [(d, t) for t in held[:N_TARGETS]]
            evals += [(d, t) for t in held[N_TARGETS:]]
    books = corpus.filter((pl.col("domain") == "books") & pl.col("held"))["text"].to_list()
    pretrain = chunks(books, BASE_STEPS * 4, rng)
    pool_frame = pl.DataFrame({"example_id": [f"r{i}" for i in range(len(pool))], "domain": [d for d, _ in pool],
                               "text": [t for _, t in pool]})
    return {"pool": pool_frame,
            "targets": pl.DataFrame({"task": [d for d, _ in targets], "text": [t for _, t in targets]}),
            "eval": pl.DataFrame({"task": [d for d, _ in evals], "text": [t for _, t in evals]}),
            "pretrain": pl.DataFrame({"example_id": [f"b{i}" for i in range(len(pretrain))], "text": pretrain})}


def task_losses(adapter: ByteGPTAdapter, model: torch.nn.Module, evals: pl.DataFrame) -> dict[str, float]:
    with torch.no_grad():
        losses = adapter.example_losses(model, adapter.collate(evals)).numpy()
    return {t: float(losses[(evals["task"] == t).to_numpy()].mean()) for t in TASKS}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="360-row smoke run")
    parser.add_argument("--reuse-masks", action="store_true", help=f"load keep masks from {MASKS.name}")
    parser.add_argument("--epochs-on-selection", type=float, default=None, metavar="E",
                        help=f"fine-tune each selection for ceil(E * rows / {BATCH}) steps instead of {STEPS}")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), metavar="N", help="fine-tuning seeds 0..N-1")
    return parser.parse_args()


def output_path(epochs: float | None, n_seeds: int) -> Path:
    """The default recipe keeps the published name; any other recipe gets its own file."""
    name = "targeted_selection"
    if epochs is not None:
        name += f"_e{epochs:g}"
    if n_seeds != len(SEEDS):
        name += f"_s{n_seeds}"
    return RESULTS / (name + ("_quick" if QUICK else "") + ".json")


def random_mask(n: int, seed: int) -> np.ndarray:
    """The random 5% keep mask fine-tuning seed ``seed`` is compared against (changes with the seed)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(100 + seed).choice(n, int(np.ceil(FRACTION * n)), replace=False)] = True
    return mask


def save_masks(masks: dict[str, np.ndarray], randoms: dict[int, np.ndarray], meta: dict) -> None:
    """Bool keep masks plus a JSON string of what the reuse run must check and report (pool, base model, timing)."""
    MASKS.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"method/{k}": v.astype(bool) for k, v in masks.items()}
    arrays |= {f"random/{s}": v.astype(bool) for s, v in randoms.items()}
    tmp = MASKS.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta, default=float)), **arrays)
    tmp.replace(MASKS)


def load_masks() -> tuple[dict[str, np.ndarray], dict[int, np.ndarray], dict]:
    if not MASKS.exists():
        sys.exit(f"{MASKS}: not found; run once without --reuse-masks to create it")
    with np.load(MASKS, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        masks = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("method/")}
        randoms = {int(k.split("/", 1)[1]): z[k] for k in z.files if k.startswith("random/")}
    return masks, randoms, meta


def finetune_steps(rows: int, epochs: float | None) -> int:
    return STEPS if epochs is None else math.ceil(epochs * rows / BATCH)


def finetune(adapter: ByteGPTAdapter, base: torch.nn.Module, frame: pl.DataFrame, seed: int,
             steps: int) -> torch.nn.Module:
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(frame.height), steps * BATCH))
    cfg = TrainConfig(batch_size=BATCH, learning_rate=1e-3, optimizer="adamw", schedule="cosine", n_checkpoints=1,
                      eval_every=10**9, seed=seed)
    return train(adapter, frame, cfg, model=copy.deepcopy(base), show_progress=False, order=order).model


def topk(scores: np.ndarray, pool: pl.DataFrame) -> np.ndarray:
    """The Selector's deterministic top-5% keep mask for per-row scores (higher = wanted)."""
    sel = Selector(SelectorConfig(budget="fraction", value=FRACTION, method="topk", dedup=False))
    return sel.select(pool.select("example_id").with_columns(score=pl.Series(scores)))["keep"].to_numpy()


def model_embeddings(adapter: ByteGPTAdapter, model: torch.nn.Module, frame: pl.DataFrame) -> np.ndarray:
    """Unit-norm mean of the base model's final hidden states over each row's bytes (MATES is model-aware)."""
    captured = []
    hook = model.ln_f.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    rows = []
    with torch.no_grad():
        for start in range(0, frame.height, 256):
            batch = adapter.collate(frame[start:start + 256])
            captured.clear()
            model(batch["input_ids"])
            mask = batch["target_mask"].unsqueeze(-1)
            rows.append(((captured[0] * mask).sum(1) / mask.sum(1).clamp_min(1)).numpy())
    hook.remove()
    emb = np.concatenate(rows)
    emb = emb - emb.mean(axis=0)
    return (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def bm25_scores(pool: pl.DataFrame, targets: pl.DataFrame) -> TargetedScores:
    """BM25 of every pool row for every target (the project's BM25 baseline), each query scaled to max 1."""
    from curation.selection.bm25 import BM25Config, bm25_relevance

    rel = bm25_relevance(pool["text"].to_list(), targets["text"].to_list(), BM25Config()).T
    return TargetedScores(rel / np.maximum(rel.max(axis=0, keepdims=True), 1e-12), targets["task"].to_numpy())


def compute_masks(adapter: ByteGPTAdapter, base: torch.nn.Module, pool: pl.DataFrame,
                  targets: pl.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, float], dict]:
    """Every method's keep mask, the timing of its expensive parts and its side figures (Spearman, storage...)."""
    masks: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    extra: dict = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        timing[name] = time.perf_counter() - t0
        return out

    # LESS features: LoRA warm-up on a random 5% + per-example Adam/SGD gradient features, 4 checkpoints
    model = copy.deepcopy(base)
    warm = timed("warmup", lambda: warmup_lora(adapter, model, pool, WarmupConfig(
        fraction=FRACTION, epochs=4, batch_size=8, learning_rate=2e-3, lora_r=16, lora_alpha=64, seed=0)))
    feats = timed("gradient_features", lambda: compute_features(
        adapter, warm, pool, targets, FeatureConfig(proj_dim=8192, projection="sjlt", batch_size=32)))
    less = timed("less_score", lambda: less_scores(feats))
    masks["less"] = topk(less.score(), pool)
    masks["less_zscored"] = topk(TargetedScores(zscore_columns(less.matrix), less.tasks).score(), pool)
    masks["bids"] = timed("bids", lambda: BIDSSelector(BIDSConfig(fraction=FRACTION)).select(
        less, pool["example_id"])["keep"].to_numpy())
    coords = timed("gist_score", lambda: gist_coordinates(feats, GISTConfig(energy=0.9)))
    masks["gist"] = topk(gist_scores(coords).score(), pool)
    less_numbers = sum(f.shape[1] for f in feats.train_adam)
    extra["storage_numbers_per_example"] = {"less": less_numbers, "gist": coords.numbers_per_example,
                                            "gist_over_less": coords.numbers_per_example / less_numbers}
    tarot = TAROTSelector(TAROTConfig(fraction=FRACTION))
    masks["tarot"] = timed("tarot", lambda: tarot.select(feats, pool["example_id"])["keep"].to_numpy())
    otm = timed("tarot_otm", lambda: TAROTSelector(TAROTConfig(fraction=0.0)).select(feats, pool["example_id"]))
    masks["tarot_otm"] = otm["keep"].to_numpy()
    extra["tarot_otm_ratio"] = float(masks["tarot_otm"].mean())

    # text baselines
    masks["bm25"] = topk(timed("bm25", lambda: bm25_scores(pool, targets)).score(), pool)
    emb = text_embeddings(pool["text"].to_list() + targets["text"].to_list(), dim=64)
    pool_emb, target_emb = emb[: pool.height], emb[pool.height:]
    masks["embedding"] = topk(TargetedScores(pool_emb @ target_emb.T, targets["task"].to_numpy()).score(), pool)

    # MATES: one-step probes (the oracle) on 20% of the pool, predictor for the rest; oracle on every row to score it
    oracle = timed("probe_oracle_all_rows", lambda: one_step_probe_labels(adapter, base, pool, targets, lr=0.05))
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(pool.height, size=pool.height // 5, replace=False))
    held = np.setdiff1d(np.arange(pool.height), sample)
    mates = timed("mates_fit_predict", lambda: MATESPredictor(PredictorConfig(epochs=300, learning_rate=1e-2)).fit(
        pool_emb[sample], oracle[sample]))
    pred = mates.predict(pool_emb)
    hidden = np.concatenate([pool_emb, model_embeddings(adapter, base, pool)], axis=1)
    mates_m = MATESPredictor(PredictorConfig(epochs=300, learning_rate=1e-2)).fit(hidden[sample], oracle[sample])
    pred_m = mates_m.predict(hidden)
    masks["mates"] = topk(-pred, pool)
    masks["mates_model_emb"] = topk(-pred_m, pool)
    masks["probe_oracle"] = topk(-oracle, pool)
    per_probe = timing["probe_oracle_all_rows"] / pool.height
    extra["mates"] = {"held_out_spearman_text_emb": spearman(pred[held], oracle[held]),
                      "held_out_spearman_text_plus_model_emb": spearman(pred_m[held], oracle[held]),
                      "val_spearman": mates.val_spearman, "oracle_s_per_row": per_probe, "labelled_rows": len(sample),
                      "oracle_s_all_rows": timing["probe_oracle_all_rows"],
                      "mates_s": per_probe * len(sample) + timing["mates_fit_predict"],
                      "domain_explains_oracle_spearman": spearman(
                          pool.with_columns(o=pl.Series(oracle)).select(pl.col("o").mean().over("domain"))["o"]
                          .to_numpy(), oracle)}

    # NN-CIFT: LESS values of 20% of the pool train the pairwise network, which predicts the other rows
    cift = timed("nn_cift_fit_predict", lambda: NNCIFTPredictor(PredictorConfig(epochs=300, learning_rate=1e-2)).fit(
        pool_emb[sample], target_emb, less.matrix[sample]))
    pred_matrix = cift.predict(pool_emb, target_emb)
    pred_matrix[sample] = less.matrix[sample]
    masks["nn_cift"] = topk(TargetedScores(pred_matrix, less.tasks).score(), pool)
    extra["nn_cift"] = {"held_out_spearman_pairs": spearman(pred_matrix[held].ravel(), less.matrix[held].ravel()),
                        "held_out_spearman_row_score": spearman(TargetedScores(pred_matrix, less.tasks).score()[held],
                                                                less.score()[held])}

    # task-agnostic references
    effort = np.linalg.norm(feats.train_sgd[-1], axis=1)
    masks["dealrec"] = DEALRecSelector(DEALRecConfig(fraction=FRACTION)).select(
        feats.train_sgd[-1][:, :256], effort, pool["example_id"])["keep"].to_numpy()
    masks["ideal"] = timed("ideal", lambda: IDEALSelector(IDEALConfig(budget=int(np.ceil(FRACTION * pool.height)),
                                                                      k=10, activation_prob=0.1)).select(
        pool_emb, pool["example_id"])["keep"].to_numpy())

    return masks, timing, extra


def main() -> None:
    args = parse_args()
    seeds = list(range(args.seeds))
    out = output_path(args.epochs_on_selection, args.seeds)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t_start = time.perf_counter()
    data = build_data()
    pool, targets, evals = data["pool"], data["targets"], data["eval"]
    adapter = ByteGPTAdapter(GPT)
    torch.manual_seed(0)
    base = train(adapter, data["pretrain"], TrainConfig(batch_size=4 if QUICK else 32, learning_rate=3e-3,
                                                         epochs=1.0, n_checkpoints=1, eval_every=10**9, seed=0),
                 show_progress=False).model
    report: dict = {"setup": {"pool_rows": pool.height, "per_domain": PER_DOMAIN, "chunk_chars": CHUNK,
                              "targets_per_task": N_TARGETS, "eval_per_task": N_EVAL, "fraction": FRACTION,
                              "finetune_steps": STEPS, "batch": BATCH, "seeds": seeds, "model": GPT.__dict__,
                              "threads": torch.get_num_threads(), "epochs_on_selection": args.epochs_on_selection},
                    "base_losses": task_losses(adapter, base, evals)}
    fingerprint = {"pool_digest": frame_digest(pool), "base_digest": state_digest(base)}
    if args.reuse_masks:
        masks, randoms, meta = load_masks()
        if meta["pool_digest"] != fingerprint["pool_digest"]:
            sys.exit(f"{MASKS}: saved for a different pool; rerun without --reuse-masks")
        timing, extra = meta["timing_s"], meta["extra"]
        report["masks_reused"] = {"file": MASKS.name, "base_identical": meta["base_digest"] == fingerprint["base_digest"],
                                  "saved_by_threads": meta["threads"]}
        if not report["masks_reused"]["base_identical"]:
            print(f"warning: base model differs from the one {MASKS.name} was computed with", flush=True)
        for seed in seeds:
            if seed in randoms and not np.array_equal(randoms[seed], random_mask(pool.height, seed)):
                sys.exit(f"{MASKS}: random mask of seed {seed} differs from its seeded recomputation")
    else:
        masks, timing, extra = compute_masks(adapter, base, pool, targets)
        save_masks(masks, {s: random_mask(pool.height, s) for s in seeds},
                   fingerprint | {"threads": torch.get_num_threads(), "timing_s": timing, "extra": extra})

    results = {}
    names = ["random", "full", *masks]
    for name in names:
        per_seed = []
        for seed in seeds:
            if name == "random":
                mask = random_mask(pool.height, seed)
            else:
                mask = np.ones(pool.height, dtype=bool) if name == "full" else masks[name]
            steps = finetune_steps(int(mask.sum()), args.epochs_on_selection)
            per_seed.append(task_losses(adapter, finetune(adapter, base, pool.filter(pl.Series(mask)), seed, steps),
                                        evals))
        losses = {t: float(np.mean([s[t] for s in per_seed])) for t in TASKS}
        seed_mean = np.array([np.mean(list(s.values())) for s in per_seed])
        seed_worst = np.array([max(s.values()) for s in per_seed])
        sd = (lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0)
        mix = {} if name in ("full", "random") else dict(pool.filter(pl.Series(masks[name]))["domain"].value_counts()
                                                         .sort("domain").iter_rows())
        results[name] = {"task_loss": losses, "mean": float(np.mean(list(losses.values()))),
                         "worst": float(max(losses.values())), "selected": int(mask.sum()), "domain_mix": mix,
                         "finetune_steps": steps, "per_seed_task_loss": per_seed,
                         "seed_mean_loss": {"mean": float(seed_mean.mean()), "sd": sd(seed_mean)},
                         "seed_worst_loss": {"mean": float(seed_worst.mean()), "sd": sd(seed_worst)}}
        print(f"{name:14s} {steps:4d} steps  mean {seed_mean.mean():.4f} ± {sd(seed_mean):.4f}  "
              f"worst {seed_worst.mean():.4f} ± {sd(seed_worst):.4f}  "
              f"{ {t: round(v, 3) for t, v in losses.items()} } {mix}", flush=True)
    report |= {"results": results, "timing_s": timing, **extra, "wall_s": time.perf_counter() - t_start}
    write_json(report, out)
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2, default=float))


if __name__ == "__main__":
    main()
