"""Influence predictors against their oracle on the six-domain corpus (issue 16, item 3; methods spec section 12).

Setup (the byte GPT and data recipe of ``targeted_selection.py``, smaller pool):
- Pool: ``PER_DOMAIN`` 96-character chunks from each of the six domains (documents hashed 80/20 into pool / held-out).
- Reference (the oracle's target): ``N_BATCHES`` disjoint batches of 8 held-out chunks per task for the five tasks
  (code, government, legal, news, wiki), i.e. 40 chunks per batch -- one batch is the reference of
  ``targeted_selection.py``.
- Base model: byte GPT (2 layers, d = 96) pre-trained on held-out books chunks, as there.
- Oracle: MATES' one-step probe (SGD, lr 0.05) of every pool row, one label per reference batch
  (``curation.selection.targeted.oracle``). Test-retest reliability: Spearman between batches / halves.
- Per seed: a random ``LABELLED`` share of the pool is "probed"; MATES and NN-CIFT are fitted on it and scored by
  held-out Spearman with the oracle on the other rows. NN-CIFT is trained on (row, reference batch) pairs -- its
  pairwise InfluenceNetwork with the mean text embedding of each batch as the target embedding -- and scored on
  the per-row mean over batches. The seed also drives the embeddings' SVD and the networks' initialisation.
- Cost: oracle seconds for the whole pool vs probing the labelled sample + features for the pool + fit + predict,
  measured in this run.

The expensive part (base model, probes, features) is cached in ``--cache`` (default /tmp); ``--fresh`` recomputes.
Run: ``OMP_NUM_THREADS=1 python -m benchmarks.selection.predictor_spearman`` -> results/predictor_spearman.json;
``--ablation`` -> results/predictor_spearman_ablation.json (features x label transform on the pilot seeds).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from benchmarks.selection.targeted_selection import _held_out, chunks, model_embeddings, shared_data
from curation.gradients.per_example import per_example_gradients, tracked_parameters
from curation.gradients.projection import ProjectionConfig, Projector
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.targeted.oracle import batch_means, oracle_reliability, probe_loss_changes
from curation.selection.targeted.predictors import (
    MATESPredictor,
    NNCIFTPredictor,
    PredictorConfig,
    gradient_embeddings,
    spearman,
    text_embeddings,
)
from curation.training.loop import TrainConfig, train

DOMAINS = ["books", "code", "government", "legal", "news", "wiki"]
TASKS = ["code", "government", "legal", "news", "wiki"]
SMOKE = "--smoke" in sys.argv  # a 60-row run that checks the script end to end
PER_DOMAIN, PER_TASK_BATCH, N_BATCHES = (10 if SMOKE else 100), 8, 4
BASE_STEPS, PROBE_LR, GRAD_DIM = (20 if SMOKE else 400), 0.05, 512
GPT = ByteGPTConfig(n_layer=2, n_head=4, d_model=96, block_size=96)
RESULTS = Path(__file__).parent / "results" / "predictor_spearman.json"


def _arg(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def build_data() -> dict:
    corpus = pl.read_parquet(shared_data()).with_columns(
        held=pl.col("doc_id").map_elements(_held_out, return_dtype=pl.Boolean))
    rng = np.random.default_rng(0)
    pool, refs = [], [[] for _ in range(N_BATCHES)]
    for d in DOMAINS:
        docs = corpus.filter(pl.col("domain") == d)
        pool += [(d, t) for t in chunks(docs.filter(~pl.col("held"))["text"].to_list(), PER_DOMAIN, rng)]
        if d in TASKS:
            held = chunks(docs.filter(pl.col("held"))["text"].to_list(), N_BATCHES * PER_TASK_BATCH, rng)
            for b in range(N_BATCHES):
                refs[b] += [(d, t) for t in held[b * PER_TASK_BATCH:(b + 1) * PER_TASK_BATCH]]
    books = corpus.filter((pl.col("domain") == "books") & pl.col("held"))["text"].to_list()
    pretrain = chunks(books, BASE_STEPS * 4, rng)
    return {"pool": pl.DataFrame({"example_id": [f"r{i}" for i in range(len(pool))],
                                  "domain": [d for d, _ in pool], "text": [t for _, t in pool]}),
            "refs": [pl.DataFrame({"task": [d for d, _ in b], "text": [t for _, t in b]}) for b in refs],
            "pretrain": pl.DataFrame({"example_id": [f"b{i}" for i in range(len(pretrain))], "text": pretrain})}


def gradient_features(adapter: ByteGPTAdapter, model: torch.nn.Module, pool: pl.DataFrame,
                      refs: list[pl.DataFrame]) -> dict[str, np.ndarray]:
    """sjlt-projected per-example gradients, their norms and losses, and the first-order probe ``-lr g . g_ref``."""
    names = adapter.tracked_modules(model)
    n_params = sum(p.numel() for p in tracked_parameters(model, names).values())
    proj = Projector(n_params, ProjectionConfig(kind="sjlt", dim=GRAD_DIM, seed=0))
    model.zero_grad()
    ref_all = pl.concat([r.select("text") for r in refs])
    adapter.example_losses(model, adapter.collate(ref_all)).mean().backward()
    g_ref = torch.cat([p.grad.detach().reshape(-1) for n, p in model.named_parameters()
                       if n in tracked_parameters(model, names)])
    model.zero_grad()
    feats, norms, first = [], [], []
    for start in range(0, pool.height, 32):
        g = per_example_gradients(adapter, model, adapter.collate(pool[start:start + 32]), modules=names).detach()
        feats.append(proj(g).numpy())
        norms.append(g.norm(dim=1).numpy())
        first.append((-PROBE_LR * g @ g_ref).numpy())
    with torch.no_grad():
        loss = adapter.example_losses(model, adapter.collate(pool)).numpy()
    return {"grad_proj": np.concatenate(feats), "grad_norm": np.concatenate(norms), "loss": loss,
            "first_order": np.concatenate(first)}


def build_cache(path: Path) -> None:
    torch.manual_seed(0)
    data = build_data()
    pool, refs = data["pool"], data["refs"]
    adapter = ByteGPTAdapter(GPT)
    t0 = time.perf_counter()
    base = train(adapter, data["pretrain"], TrainConfig(batch_size=32, learning_rate=3e-3, epochs=1.0,
                                                         n_checkpoints=1, eval_every=10**9, seed=0),
                 show_progress=False).model
    timing = {"pretrain": time.perf_counter() - t0}
    t0 = time.perf_counter()
    grads = gradient_features(adapter, base, pool, refs)
    timing["gradient_features"] = time.perf_counter() - t0
    ref_all = pl.concat([r.select("text") for r in refs])
    ref_grads = gradient_features(adapter, base, ref_all, refs)
    torch.save(base.state_dict(), path.with_suffix(".pt"))
    t0 = time.perf_counter()
    hidden = model_embeddings(adapter, base, pool)
    timing["hidden_features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    probe_loss_changes(adapter, base, pool[:32], refs[0], lr=PROBE_LR)
    timing["oracle_one_batch_32_rows"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    changes = probe_loss_changes(adapter, base, pool, pl.concat([r.select("text") for r in refs]), lr=PROBE_LR)
    timing["oracle_all_batches"] = time.perf_counter() - t0
    print(f"oracle {timing['oracle_all_batches']:.0f} s", flush=True)
    np.savez(path, changes=changes, labels=batch_means(changes, [r.height for r in refs]), hidden=hidden, domain=pool["domain"].to_numpy().astype(str),
             text=np.array(pool["text"].to_list(), dtype=object), ref_text=np.array(
                 [r["text"].to_list() for r in refs], dtype=object), timing=json.dumps(timing),
             ref_hidden=model_embeddings(adapter, base, ref_all), ref_grad_proj=ref_grads["grad_proj"],
             ref_grad_norm=ref_grads["grad_norm"], ref_loss=ref_grads["loss"], **grads)


SEEDS, PILOT_SEEDS = [0, 1, 2, 3, 4, 5, 6], [0, 1]  # defaults were chosen on the pilot seeds only
FRACTIONS = [0.2, 0.4]
BEFORE = {"features": "text", "label_transform": "zscore", "epochs": 300, "learning_rate": 1e-2}  # last session's


def _targets(changes: np.ndarray, ref_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NN-CIFT's targets: each (reference batch, task) group of ``PER_TASK_BATCH`` rows, with the mean feature of
    its rows and the mean loss change it sees (the mean over groups is the MATES label)."""
    groups = np.arange(changes.shape[1]) // PER_TASK_BATCH
    idx = range(groups.max() + 1)
    return (np.stack([ref_features[groups == g].mean(0) for g in idx]),
            np.stack([changes[:, groups == g].mean(1) for g in idx], axis=1))


def evaluate(c, adapter: ByteGPTAdapter, base: torch.nn.Module, pool: pl.DataFrame, refs: pl.DataFrame) -> dict:
    labels, changes = c["labels"], c["changes"]
    oracle = labels.mean(1)
    n = len(oracle)
    t0 = time.perf_counter()
    probe_loss_changes(adapter, base, pool[:48], refs, lr=PROBE_LR)
    oracle_per_row = (time.perf_counter() - t0) / 48
    rows: list[dict] = []
    for seed in SEEDS:
        both = pl.concat([pool.select("text"), refs.select("text")])
        t0 = time.perf_counter()
        grad = gradient_embeddings(adapter, base, both, dim=PredictorConfig().gradient_dim, seed=seed)
        grad_s = (time.perf_counter() - t0) * n / both.height  # the pool's share
        t0 = time.perf_counter()
        text = text_embeddings(both["text"].to_list(), dim=PredictorConfig().embedding_dim, seed=seed)
        text_s = (time.perf_counter() - t0) * n / both.height
        for frac in FRACTIONS:
            sample = np.sort(np.random.default_rng(seed).choice(n, round(frac * n), replace=False))
            held = np.setdiff1d(np.arange(n), sample)
            row = {"seed": seed, "pilot": seed in PILOT_SEEDS, "labelled_fraction": frac, "labelled": len(sample)}
            for tag, feats, cfg in [("before", text, PredictorConfig(seed=seed, **BEFORE)),
                                    ("after", grad, PredictorConfig(seed=seed))]:
                x, ref_x = feats[:n], feats[n:]
                t0 = time.perf_counter()
                mates = MATESPredictor(cfg).fit(x[sample], oracle[sample])
                pred = mates.predict(x)
                fit_s = time.perf_counter() - t0
                row[f"mates_{tag}"] = spearman(pred[held], oracle[held])
                target_x, values = _targets(changes, ref_x)
                cift_cfg = PredictorConfig(seed=seed, epochs=300, learning_rate=1e-2)  # the last session's setting
                cift = NNCIFTPredictor(cift_cfg).fit(x[sample], target_x, values[sample])
                pairs = cift.predict(x[held], target_x)
                row[f"nn_cift_{tag}"] = spearman(pairs.mean(1), oracle[held])
                row[f"nn_cift_pairs_{tag}"] = spearman(pairs.ravel(), values[held].ravel())
                if tag == "after":
                    full = oracle_per_row * n
                    cheap = oracle_per_row * len(sample) + grad_s + fit_s
                    row |= {"oracle_s_whole_pool": full, "mates_s": cheap, "cost_ratio": cheap / full,
                            "features_s": grad_s, "fit_predict_s": fit_s}
                else:
                    row["text_features_s"] = text_s
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            rows.append(row)
    return {"oracle_s_per_row": oracle_per_row, "per_seed": rows}


def summary(rows: list[dict]) -> dict:
    out = {}
    for frac in FRACTIONS:
        for group, keep in [("fresh", lambda r: not r["pilot"]), ("all", lambda r: True)]:
            sel = [r for r in rows if r["labelled_fraction"] == frac and keep(r)]
            for key in ["mates_before", "mates_after", "nn_cift_before", "nn_cift_after", "nn_cift_pairs_before",
                        "nn_cift_pairs_after", "cost_ratio"]:
                vals = [r[key] for r in sel]
                out[f"{frac}/{group}/{key}"] = {"mean": float(np.mean(vals)), "min": float(np.min(vals)),
                                                "max": float(np.max(vals))}
    return out


def diagnosis(c) -> dict:
    """What explains the oracle: its first-order approximation, the candidate's gradient norm and loss, domain."""
    oracle = c["labels"].mean(1)
    domain = c["domain"]
    domain_mean = np.array([oracle[domain == d].mean() for d in domain])
    q = np.quantile(oracle, [0.01, 0.25, 0.5, 0.75, 0.99])
    return {"first_order_minus_lr_g_dot_gref": spearman(c["first_order"], oracle),
            "gradient_norm": spearman(c["grad_norm"], oracle), "loss": spearman(c["loss"], oracle),
            "domain_mean": spearman(domain_mean, oracle),
            "label_quantiles_1_25_50_75_99": q.tolist(),
            "tail_ratio_(q99-q50)/(q75-q25)": float((q[4] - q[2]) / (q[3] - q[1]))}


def ablation(c, adapter: ByteGPTAdapter, base: torch.nn.Module, pool: pl.DataFrame) -> dict:
    """MATES on the pilot seeds: features x label transform x labelled share (how the defaults were chosen)."""
    oracle = c["labels"].mean(1)
    n = len(oracle)
    out: dict[str, list[float]] = {}
    for seed in PILOT_SEEDS:
        cfg = PredictorConfig(seed=seed)
        text = text_embeddings(pool["text"].to_list(), dim=cfg.embedding_dim, seed=seed)
        grad = gradient_embeddings(adapter, base, pool, dim=cfg.gradient_dim, seed=seed)
        for frac in FRACTIONS:
            sample = np.sort(np.random.default_rng(seed).choice(n, round(frac * n), replace=False))
            held = np.setdiff1d(np.arange(n), sample)
            for name, x in [("text", text), ("gradient", grad), ("text+gradient", np.concatenate([text, grad], 1))]:
                for transform in ("zscore", "rank"):
                    model = MATESPredictor(PredictorConfig(seed=seed, label_transform=transform))
                    pred = model.fit(x[sample], oracle[sample]).predict(x[held])
                    out.setdefault(f"{frac}/{name}/{transform}", []).append(spearman(pred, oracle[held]))
        print(seed, flush=True)
    return out


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cache = Path(_arg("--cache", "/tmp/predictor_spearman_cache.npz"))
    if "--fresh" in sys.argv or not cache.exists():
        build_cache(cache)
    c = np.load(cache, allow_pickle=True)
    data = build_data()
    adapter = ByteGPTAdapter(GPT)
    base = adapter.build_model()
    base.load_state_dict(torch.load(cache.with_suffix(".pt")))
    refs = pl.concat(data["refs"])
    if "--ablation" in sys.argv:
        table = ablation(c, adapter, base, data["pool"])
        path = RESULTS.with_name("predictor_spearman_ablation_smoke.json" if SMOKE else "predictor_spearman_ablation.json")
        path.write_text(json.dumps({"pilot_seeds": PILOT_SEEDS, "held_out_spearman": table,
                                    "oracle_diagnosis": diagnosis(c)}, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(table, indent=2))
        return
    t_start = time.perf_counter()
    result = evaluate(c, adapter, base, data["pool"], refs)
    report = {"setup": {"pool_rows": data["pool"].height, "reference_batches": N_BATCHES,
                        "reference_rows_per_batch": data["refs"][0].height, "probe_lr": PROBE_LR,
                        "model": GPT.__dict__, "seeds": SEEDS, "pilot_seeds": PILOT_SEEDS,
                        "labelled_fractions": FRACTIONS, "before_config": BEFORE,
                        "after_config": {k: getattr(PredictorConfig(), k) for k in
                                         ("features", "label_transform", "learning_rate", "weight_decay",
                                          "epochs", "hidden", "gradient_dim")},
                        "threads": torch.get_num_threads()},
              "oracle_reliability": oracle_reliability(c["labels"]), "oracle_diagnosis": diagnosis(c),
              "cache_timing_s": json.loads(str(c["timing"])), **result, "summary": summary(result["per_seed"]),
              "eval_wall_s": time.perf_counter() - t_start}
    out = RESULTS.with_name("predictor_spearman_smoke.json") if SMOKE else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("oracle_reliability", "oracle_diagnosis", "summary")}, indent=2))


if __name__ == "__main__":
    main()
