"""Palimpsest query test at the demo's scale (issue 18): why it was weak, and the ensemble reference that fixes it.

Models: the demo LM's architecture and recipe (params.yaml ``train_lm``: 3 layers, d_model 192, block 128; AdamW
3e-3, batch 8, one epoch, constant rate), trained with ``train_in_order`` on a seeded permutation of the demo's
training table (``prepare_data`` output, 2,062 passages of 192 characters). "Derived" = that model + the demo's
derivation (val rows 0-159, AdamW 3e-4, batch 16: 10 steps). Every model trained for another seed is independent
of a run's order, so the same models serve as references, null bank and null suspects for every run.

Sections (pre-registration in docs/benchmarks.md "Provenance at demo scale"):
- pilot: run seed 1 against reference seed 11 and independents 200, 201: loss windows, one vs three references;
- confirm: fresh run seeds 3, 4, 5, own and derived, single reference (seed 11) vs ensemble reference, bank = every
  other model of the pool;
- demo: the demo's own run (``--demo``: a ``dvc repro`` folder with checkpoints/lm and the provenance_suspects
  checkpoints) against the same pool;
- nulls: every pool model as the suspect against the others, over ``--orders`` random orders (FPR).

Per-model token log-probabilities are cached under ``--cache`` (a pool model takes 2-7 min on one busy thread).
``OMP_NUM_THREADS=1 python -m benchmarks.provenance.demo_scale --data data/corpus --demo /path/to/demo``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import torch
from scipy import stats

from curation.io import write_json
from curation.models.base import load_adapter_model
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.provenance.membership import token_stats
from curation.provenance.palimpsest import query_test
from curation.provenance.retrain import OrderedTrainConfig, train_in_order

DEMO = ByteGPTConfig(n_layer=3, n_head=4, d_model=192, block_size=128)
RECIPE = {"learning_rate": 3e-3, "batch_size": 8}
DERIVE = OrderedTrainConfig(learning_rate=3e-4, batch_size=16)
PILOT, CONFIRM, POOL_EXTRA = 1, (3, 4, 5), (11, 200, 201)
OUT = Path(__file__).with_name("results") / "demo_scale.json"


def logprob_matrix(adapter, model, frame: pl.DataFrame) -> np.ndarray:
    """``[rows, 128]`` token log-probabilities (NaN beyond a row's end)."""
    out = np.full((frame.height, DEMO.block_size), np.nan)
    for i, a in enumerate(token_stats(adapter, model, frame).logprobs):
        out[i, : min(DEMO.block_size, a.size)] = a[: DEMO.block_size]
    return out


def order(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def positions_of(seed: int, n: int) -> np.ndarray:
    """Training position of every row for the run with ``seed``."""
    pos = np.empty(n)
    pos[order(seed, n)] = np.arange(n)
    return pos


def run_models(seed: int, train: pl.DataFrame, other: pl.DataFrame, cache: Path, *,
               derive: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Log-prob matrices of the run with ``seed`` and, with ``derive``, of its derivation (cached)."""
    own, der = cache / f"own_{seed}.npy", cache / f"derived_{seed}.npy"
    if not own.exists() or (derive and not der.exists()):
        adapter = ByteGPTAdapter(DEMO)
        torch.manual_seed(seed)
        model = train_in_order(adapter, adapter.build_model(), train[order(seed, train.height)],
                               OrderedTrainConfig(**RECIPE, seed=seed), copy_model=False)
        np.save(own, logprob_matrix(adapter, model, train))
        if derive:
            np.save(der, logprob_matrix(adapter, train_in_order(adapter, model, other.head(160), DERIVE), train))
    return np.load(own), (np.load(der) if derive else None)


def loss(matrix: np.ndarray, start: int = 0) -> np.ndarray:
    return -np.nanmean(matrix[:, start:], axis=1)


def frames(ids: pl.Series, values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"example_id": ids, "loss": values})


def three_ways(ids, pos, suspect, pool: dict[int, np.ndarray], ref: int) -> dict:
    """Single reference; single reference + bank (the shipped test before); ensemble reference + bank."""
    p = pl.DataFrame({"example_id": ids, "position": pos.astype(np.int64)})
    r = frames(ids, pool[ref])
    bank = [frames(ids, v) for s, v in pool.items() if s != ref]
    single = query_test(p, frames(ids, suspect), r, null_losses=bank, n_permutations=1)
    ens = query_test(p, frames(ids, suspect), r, null_losses=bank, ensemble_reference=True, n_permutations=1)
    return {"single": {"rho": single.statistic, "p": single.p_value, "bank_z": single.null.z,
                       "bank_p_t": single.null.p_t, "bank_models": len(bank)},
            "ensemble": {"rho": ens.statistic, "p": ens.p_value, "bank_z": ens.null.z, "bank_p_t": ens.null.p_t,
                         "bank_p_rank": ens.null.p_rank, "bank_models": len(bank) + 1}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/corpus", help="folder with the demo's train.parquet and val.parquet")
    ap.add_argument("--demo", default="", help="a dvc repro folder: checkpoints/lm and checkpoints/provenance")
    ap.add_argument("--provenance", default="", help="provenance_suspects output (default DEMO/checkpoints/provenance)")
    ap.add_argument("--orders", type=int, default=100, help="random orders for the null FPR")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "curation-provenance-demo-scale"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    train = pl.read_parquet(Path(args.data) / "train.parquet").select("example_id", "text")
    other = pl.read_parquet(Path(args.data) / "val.parquet").select("example_id", "text")
    ids, n = train["example_id"], train.height
    runs = {s: run_models(s, train, other, cache, derive=s in CONFIRM) for s in (PILOT, *CONFIRM, *POOL_EXTRA)}
    pool = {s: loss(own) for s, (own, _) in runs.items()}  # every run's own model is independent of the others
    out: dict = {"n": n, "pool_seeds": list(pool)}

    pos = positions_of(PILOT, n)  # pilot: windows and one vs three references
    own, r, extra = pool[PILOT], pool[11], [pool[200], pool[201]]
    out["pilot"] = {f"window_{a}_128": float(stats.spearmanr(pos, loss(runs[PILOT][0], a) - loss(runs[11][0], a))
                                             .statistic) for a in (0, 16, 32)}
    out["pilot"]["three_references"] = float(stats.spearmanr(pos, own - (r + sum(extra)) / 3).statistic)
    bins = np.array_split(np.argsort(pos), 20)
    out["pilot"]["binned_own_minus_ref"] = [float((own - r)[b].mean()) for b in bins]

    out["confirm"] = {}
    for s in CONFIRM:
        others = {k: v for k, v in pool.items() if k != s}
        for name, values in (("own", pool[s]), ("derived", loss(runs[s][1]))):
            out["confirm"][f"seed{s}_{name}"] = three_ways(ids, positions_of(s, n), values, others, ref=11)

    if args.demo:
        demo = Path(args.demo)
        prov = Path(args.provenance or demo / "checkpoints" / "provenance")
        demo_pos = ids.to_frame().join(pl.read_parquet(demo / "checkpoints/lm/positions.parquet"), on="example_id",
                                       how="left")["position"].to_numpy()
        final = max((demo / "checkpoints/lm").glob("ckpt-*.safetensors"))
        out["demo"] = {}
        for name, path in (("own", final), ("derived", prov / "derived.safetensors"),
                           ("independent", prov / "independent.safetensors")):
            adapter, model, _ = load_adapter_model(path)
            values = loss(logprob_matrix(adapter, model, train))
            out["demo"][name] = three_ways(ids, demo_pos, values, pool, ref=PILOT)
            out["demo"][name]["rho_by_single_reference"] = {  # how much one reference's own noise moves rho
                s: float(stats.spearmanr(demo_pos, values - v).statistic) for s, v in pool.items()}
        out["demo_order_nulls"] = [three_ways(ids, demo_pos, pool[s], {k: v for k, v in pool.items() if k != s},
                                              ref=min(k for k in pool if k != s))["ensemble"] for s in pool]

    rng = np.random.default_rng(7)  # nulls: each pool model as the suspect against the others, random orders
    rows = []
    for k in range(args.orders):
        p = rng.permutation(n).astype(float)
        for s, values in pool.items():
            res = three_ways(ids, p, values, {j: v for j, v in pool.items() if j != s},
                             ref=min(j for j in pool if j != s))
            rows.append((k, res["single"]["p"], res["single"]["bank_p_t"], res["ensemble"]["p"],
                         res["ensemble"]["bank_p_t"]))
    a = np.array(rows)
    out["nulls"] = {"orders": args.orders, "models": len(pool)}
    for j, name in enumerate(("single_p", "single_bank_p_t", "ensemble_p", "ensemble_bank_p_t"), start=1):
        per_order = [float(np.mean(a[a[:, 0] == k, j] <= 0.05)) for k in range(args.orders)]
        out["nulls"][name] = {"fpr_0.05": float(np.mean(a[:, j] <= 0.05)), "fpr_0.001": float(np.mean(a[:, j] <= 1e-3)),
                              "sd_over_orders": float(np.std(per_order)), "tests": len(a)}
    OUT.parent.mkdir(exist_ok=True)
    write_json(out, OUT)
    print(OUT)


if __name__ == "__main__":
    main()
