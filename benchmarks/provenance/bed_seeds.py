"""The provenance unit tests' ground-truth bed repeated over seeds of our run: margins for their thresholds.

tests/unit/provenance/test_ground_truth.py runs one bed: "alice" (tiny GPT, seed 0, ALICE recipe) on the
multi-domain passages, a model derived from it (10 fine-tuning steps on other text), a reference (seed 101,
REFERENCE recipe) and 20 independent null models (seeds 1000-1019, NULL recipe; the first 10 are the bank, the
other 10 the tested independents). This script repeats that bed for alice seeds ``--seeds`` (each seed is also
alice's order); the reference and the null models do not depend on alice, so they are trained once (nulls cached
by run.py's ``null_pair_losses``: pair j = seeds 1000 + 2j, 1001 + 2j, i.e. the tests' models in the tests' order).

Per seed, every figure a test asserts on: the derived model against the single reference (rho, exact p,
permutation p at 199 permutations), with the bank (single reference, and ``ensemble_reference``: rho, exact p,
bank z, p_t, p_rank); the 10 disjoint independent pairs (KS p, FPR at 0.05); the tested independents against the
bank (share with exact p <= 0.05 and with p_t <= 0.05, both modes); alice's and the derived model's mean loss and
alice's own rho against the reference (a run that trained badly carries no order signal). A synthetic section repeats the two ensemble
tests of tests/unit/provenance/test_palimpsest.py over generator seeds.

``OMP_NUM_THREADS=1 python -m benchmarks.provenance.bed_seeds`` (about 6 min on one busy thread) writes
benchmarks/provenance/results/bed_seeds.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from scipy import stats

from benchmarks.provenance.run import DATA, log, null_models, null_pair_losses
from curation.io import write_json
from curation.models.gpt import ByteGPTAdapter
from curation.provenance.palimpsest import example_losses, query_test
from curation.provenance.retrain import train_in_order
from curation.provenance.testbed import (
    ALICE,
    FINETUNE,
    REFERENCE,
    TINY_GPT,
    exchangeable_bed,
    passages,
    recency_bed,
    split,
    train_run,
)

OUT = Path(__file__).with_name("results") / "bed_seeds.json"
N_NULL_TRIALS = 10  # as in the test: 10 bank models, 10 tested independents, 10 disjoint null pairs


def derived_figures(positions: pl.DataFrame, derived: pl.DataFrame, ref_loss: pl.DataFrame,
                    bank: list[pl.DataFrame]) -> dict:
    """The derived model's figures in the three settings the tests use."""
    alone = query_test(positions, derived, ref_loss, n_permutations=199)
    out = {"reference_only": {"rho": alone.statistic, "p": alone.p_value, "p_permutation": alone.p_permutation}}
    for name, ensemble in (("single_reference_bank", False), ("ensemble_reference_bank", True)):
        res = query_test(positions, derived, ref_loss, null_losses=bank, ensemble_reference=ensemble, n_permutations=1)
        out[name] = {"rho": res.statistic, "p": res.p_value, "bank_z": res.null.z, "bank_p_t": res.null.p_t,
                     "bank_p_rank": res.null.p_rank}
    return out


def independent_figures(positions: pl.DataFrame, ref_loss: pl.DataFrame, models: list[pl.DataFrame]) -> dict:
    """Independent models against our order: the disjoint-pair test and the tested half against the bank."""
    pair_p = np.array([query_test(positions, models[2 * j], models[2 * j + 1], n_permutations=1).p_value
                       for j in range(N_NULL_TRIALS)])
    out = {"pairs": {"ks_p_uniform": float(stats.kstest(pair_p, "uniform").pvalue),
                     "fpr_0.05": float(np.mean(pair_p <= 0.05)), "min_p": float(pair_p.min())}}
    bank, tested = models[:N_NULL_TRIALS], models[N_NULL_TRIALS:]
    for name, ensemble in (("single_reference_bank", False), ("ensemble_reference_bank", True)):
        res = [query_test(positions, m, ref_loss, null_losses=bank, ensemble_reference=ensemble, n_permutations=1)
               for m in tested]
        p, p_t = np.array([r.p_value for r in res]), np.array([r.null.p_t for r in res])
        out[name] = {"share_exact_p_0.05": float(np.mean(p <= 0.05)), "share_p_t_0.05": float(np.mean(p_t <= 0.05)),
                     "min_exact_p": float(p.min()), "min_p_t": float(p_t.min())}
    return out


def spread(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"seed0": float(a[0]), "min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


def leaves(tree: dict, prefix: str = "") -> dict[str, float]:
    """Flatten nested figures to ``a.b.c`` keys."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def bed_section(seeds: list[int], cache: Path) -> dict:
    corpus = pl.read_parquet(DATA / "multidomain_corpus" / "corpus.parquet", columns=["doc_id", "domain", "text"])
    train, other = split(passages(corpus, chars=64, per_domain=500))
    adapter = ByteGPTAdapter(TINY_GPT)
    started = time.monotonic()
    ref_loss = example_losses(adapter, train_run(train, seed=101, cfg=REFERENCE).model, train)
    null_pair_losses(adapter, train, range(N_NULL_TRIALS), cache)
    models = null_models(train, N_NULL_TRIALS, cache)  # seeds 1000, 1001, ..., 1019 in this order
    shared_s = time.monotonic() - started
    rows, seconds = [], []
    for seed in seeds:
        t0 = time.monotonic()
        alice = train_run(train, seed=seed, cfg=ALICE)
        own = example_losses(adapter, alice.model, train)
        derived = example_losses(adapter, train_in_order(adapter, alice.model, other.head(80), FINETUNE), train)
        itself = query_test(alice.positions, own, ref_loss, n_permutations=1)
        row = {"seed": seed, "mean_loss": {"alice": float(own["loss"].mean()), "derived": float(derived["loss"].mean())},
               "alice_itself": {"rho": itself.statistic, "p": itself.p_value},
               "derived": derived_figures(alice.positions, derived, ref_loss, models[:N_NULL_TRIALS]),
               "independent": independent_figures(alice.positions, ref_loss, models)}
        rows.append(row)
        seconds.append(time.monotonic() - t0)
        d = row["derived"]["ensemble_reference_bank"]
        i = row["independent"]["ensemble_reference_bank"]
        log(f"seed {seed}: ensemble rho={d['rho']:.4f} p={d['p']:.1e} z={d['bank_z']:.2f} p_t={d['bank_p_t']:.1e}; "
            f"independents p_t<=0.05 {i['share_p_t_0.05']:.2f} exact {i['share_exact_p_0.05']:.2f}")
    flat = [leaves({k: r[k] for k in ("mean_loss", "alice_itself", "derived", "independent")}) for r in rows]
    summary = {key: spread([f[key] for f in flat]) for key in flat[0]}
    for mode in ("single_reference_bank", "ensemble_reference_bank"):  # pooled FPR over all seeds' tested models
        for share in ("share_exact_p_0.05", "share_p_t_0.05"):
            summary[f"independent.{mode}.{share}"]["pooled_over_seeds"] = float(
                np.mean([f[f"independent.{mode}.{share}"] for f in flat]))
    summary["independent.pairs.fpr_0.05"]["pooled_over_seeds"] = float(
        np.mean([f["independent.pairs.fpr_0.05"] for f in flat]))
    return {"n_examples": train.height, "seeds": seeds, "mean_loss_reference": float(ref_loss["loss"].mean()),
            "mean_loss_null_models": spread([float(m["loss"].mean()) for m in models]),
            "n_bank": N_NULL_TRIALS, "n_tested_independents": N_NULL_TRIALS,
            "note": "reference and null models are shared by every seed; only alice and its derived model change",
            "seconds_shared_models": round(shared_s, 1), "seconds_per_seed": spread(seconds),
            "summary": summary, "per_seed": rows}


def synthetic_centres(seed: int, n: int) -> dict:
    """test_ensemble_reference_centres_every_model_on_the_mean_... with generator ``seed`` and ``n`` examples:
    models = shared difficulty + own noise (sd 0.3), the suspect also remembers late examples (0.15 * position/n)."""
    positions, reference, bank, suspect = recency_bed(seed, n)
    single = query_test(positions, suspect, reference, null_losses=bank, n_permutations=1).statistic
    ens = query_test(positions, suspect, reference, null_losses=bank, ensemble_reference=True,
                     n_permutations=1).statistic
    return {"seed": seed, "single_rho": single, "ensemble_rho": ens, "ensemble_minus_single": ens - single}


def synthetic_calibration(seed: int, orders: int = 300) -> dict:
    """test_ensemble_reference_keeps_the_bank_p_values_calibrated_... with generator ``seed``: 10 exchangeable
    models, ``orders`` random orders; shares of rank p <= 0.1 (expected 0.1) and exact p <= 0.05 (expected 0.05)."""
    models, order_stream = exchangeable_bed(seed)
    p_rank, p_exact = [], []
    for _, positions in zip(range(orders), order_stream):
        res = query_test(positions, models[0], models[1], null_losses=models[2:], ensemble_reference=True,
                         n_permutations=1)
        p_rank.append(res.null.p_rank)
        p_exact.append(res.p_value)
    return {"seed": seed, "share_p_rank_0.1": float(np.mean(np.array(p_rank) <= 0.1)),
            "share_exact_p_0.05": float(np.mean(np.array(p_exact) <= 0.05))}


def synthetic_ensemble(seeds: list[int], sizes: tuple[int, ...] = (400, 12000)) -> dict:
    """test_palimpsest.py's two ensemble tests over generator seeds (the tests use seeds 5 and 6); the centring
    test at its former size (400 examples) and at the size it now uses."""
    out: dict = {"seeds": seeds}
    for n in sizes:
        rows = [synthetic_centres(seed, n) for seed in seeds]
        out[f"centres_n{n}"] = {
            "summary": {k: spread([r[k] for r in rows]) for k in rows[0] if k != "seed"},
            "seeds_with_ensemble_below_single_below_0": sum(r["ensemble_rho"] < r["single_rho"] < 0 for r in rows),
            "per_seed": rows}
    rows = [synthetic_calibration(seed) for seed in seeds]
    out["calibration"] = {"summary": {k: spread([r[k] for r in rows]) | {"sd": float(np.std([r[k] for r in rows]))}
                                      for k in rows[0] if k != "seed"}, "per_seed": rows}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:20", help="alice seeds a:b (and synthetic generator seeds)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "curation-provenance-benchmark" / "nulls"),
                    help="null-model losses (run.py's null cache)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    lo, hi = (int(x) for x in args.seeds.split(":"))
    seeds = list(range(lo, hi))
    started = time.monotonic()
    out = {"bed": bed_section(seeds, Path(args.cache))}
    out["synthetic_ensemble"] = synthetic_ensemble(seeds)
    out["seconds"] = round(time.monotonic() - started, 1)
    OUT.parent.mkdir(exist_ok=True)
    write_json(out, OUT)
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
