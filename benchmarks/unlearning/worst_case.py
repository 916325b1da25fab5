"""Benchmark: do worst-case forget sets (Challenging Forgets) give a larger gap to exact retraining than random
forget sets of the same size, for gradient ascent?

Per testbed seed (curation.unlearning.testbed) and forget size m = 40 of 400 rows (10 %):
- worst-case sets searched with the sign-SGD inner loop for two lower levels: ``gradient_ascent`` (the operator
  under test) and ``finetune`` (the paper's released lower level);
- three random sets of the same size;
each set is unlearned by gradient ascent (Adam, 10 steps, at two strengths: lr 1e-3 and 3e-3) and by exact retrain.
Gap to retraining (pre-registered, the paper's "avg. gap"): mean absolute difference in percentage points over
{forget accuracy, retain accuracy, validation accuracy, MIA AUC (loss, forget vs holdout)}; also the absolute
difference of mean forget loss.

Run: OMP_NUM_THREADS=1 python benchmarks/unlearning/worst_case.py [--seeds 5]
Writes benchmarks/unlearning/worst_case.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from curation.io import write_json
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.training import train
from curation.unlearning.metrics import mia_auc
from curation.unlearning.operators import UnlearnConfig, unlearn
from curation.unlearning.requests import split_forget_retain
from curation.unlearning.testbed import TRAIN_CFG, noisy_digits
from curation.unlearning.worst_case import WorstCaseConfig, worst_case_forget_set

SIZE = 40
GA = {"ga_lr1e-3": UnlearnConfig(method="gradient_ascent", steps=10, learning_rate=1e-3),
      "ga_lr3e-3": UnlearnConfig(method="gradient_ascent", steps=10, learning_rate=3e-3)}


@torch.no_grad()
def evaluate(adapter, model, forget, retain, holdout, validation) -> dict[str, float]:
    def acc(frame: pl.DataFrame) -> float:
        batch = adapter.collate(frame)
        return float((adapter.logits(model, batch).argmax(-1) == batch["y"]).double().mean())

    def losses(frame: pl.DataFrame) -> np.ndarray:
        return adapter.example_losses(model, adapter.collate(frame)).double().numpy()

    return {"forget_acc": acc(forget), "retain_acc": acc(retain), "val_acc": acc(validation),
            "mia_auc": mia_auc(-losses(forget), -losses(holdout)), "forget_loss": float(losses(forget).mean())}


def avg_gap(a: dict[str, float], b: dict[str, float]) -> float:
    return float(np.mean([abs(a[k] - b[k]) * 100 for k in ("forget_acc", "retain_acc", "val_acc", "mia_auc")]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    started = time.monotonic()
    rows = []
    adapter = MLPClassifierAdapter(ClassifierConfig(hidden=(256,)))
    for seed in range(args.seeds):
        frame = noisy_digits(seed)
        pool, holdout, validation = frame[:400], frame[400:900], frame[900:1200]
        cfg = replace(TRAIN_CFG, seed=seed)
        original = train(adapter, pool, cfg, show_progress=False).model
        sets = {}
        for lower in ("gradient_ascent", "finetune"):
            sel, _ = worst_case_forget_set(adapter, original, pool,
                                           WorstCaseConfig(size=SIZE, operator=lower, seed=seed))
            sets[f"worst_{lower}"] = sel.filter(pl.col("selected")).select("example_id")
        for r in range(3):
            sets[f"random_{r}"] = pool.select("example_id").sample(SIZE, seed=1000 * seed + r)
        for name, request in sets.items():
            forget, retain = split_forget_retain(pool, request)
            retrained = train(adapter, retain, replace(cfg, seed=seed + 100), show_progress=False).model
            ref = evaluate(adapter, retrained, forget, retain, holdout, validation)
            for op_name, op in GA.items():
                model = unlearn(adapter, original, forget, retain, op).model
                got = evaluate(adapter, model, forget, retain, holdout, validation)
                rows.append({"seed": seed, "set": name, "operator": op_name, "avg_gap": avg_gap(got, ref),
                             "forget_loss_gap": abs(got["forget_loss"] - ref["forget_loss"]),
                             **{f"unlearned_{k}": v for k, v in got.items()},
                             **{f"retrain_{k}": v for k, v in ref.items()}})
            print(seed, name, [round(r["avg_gap"], 2) for r in rows[-2:]], flush=True)
    table = pl.DataFrame(rows)
    summary: dict = {"seeds": args.seeds, "forget_size": SIZE, "pool": 400}
    for op_name in GA:
        t = table.filter(pl.col("operator") == op_name)
        per_seed_random = t.filter(pl.col("set").str.starts_with("random")).group_by("seed").agg(
            pl.col("avg_gap").mean().alias("random_gap"), pl.col("forget_loss_gap").mean().alias("random_fl_gap"))
        for lower in ("gradient_ascent", "finetune"):
            w = t.filter(pl.col("set") == f"worst_{lower}").join(per_seed_random, on="seed")
            summary[f"{op_name}/worst_{lower}"] = {
                "worst_avg_gap_mean": float(w["avg_gap"].mean()),
                "random_avg_gap_mean": float(w["random_gap"].mean()),
                "seeds_worst_gap_larger": int((w["avg_gap"] > w["random_gap"]).sum()),
                "worst_forget_loss_gap_mean": float(w["forget_loss_gap"].mean()),
                "random_forget_loss_gap_mean": float(w["random_fl_gap"].mean()),
            }
    summary["seconds"] = round(time.monotonic() - started, 1)
    write_json({"summary": summary, "rows": rows}, Path(__file__).with_name("worst_case.json"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
