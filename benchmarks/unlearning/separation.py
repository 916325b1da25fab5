"""Benchmark: does the unlearning verification separate unlearned from not-unlearned models across seeds?

Per testbed seed (curation.unlearning.testbed: an MLP overfit on noisy digits, 100 of 400 rows forgotten, and a
small byte GPT memorising doc passages, 40 of 80 forgotten), the retrained reference is one exact retrain; the
candidates with a known answer are
- unlearned: two further exact retrains with other seeds;
- not unlearned: the original model and a token unlearning step (one SGD gradient-ascent step, lr 1e-4).
Score = the Check's severity (worst criterion in threshold units). Reports the ROC-AUC of the severity for
not-unlearned vs unlearned, the verdict accuracy, and (unlabelled, descriptive) verdicts of approximate operators.

Run: OMP_NUM_THREADS=1 python benchmarks/unlearning/separation.py [--seeds 6] [--gpt-seeds 3]
Writes benchmarks/unlearning/separation.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from curation.io import write_json
from curation.training import train
from curation.unlearning.operators import UnlearnConfig, unlearn
from curation.unlearning.testbed import build_gpt_setting, build_setting
from curation.unlearning.verify import UnlearningCheck, UnlearningInputs

APPROXIMATE = {
    "iau_1step": UnlearnConfig(method="iau", steps=1, learning_rate=1e-3),
    "iau_5steps": UnlearnConfig(method="iau", steps=5, learning_rate=1e-3),
    "gradient_difference_20": UnlearnConfig(method="gradient_difference", steps=20, learning_rate=1e-3),
    "gradient_ascent_20": UnlearnConfig(method="gradient_ascent", steps=20, learning_rate=1e-3),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--gpt-seeds", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    rows = []
    check = UnlearningCheck()
    runs = [("mlp", seed, build_setting) for seed in range(args.seeds)]
    runs += [("gpt", seed, build_gpt_setting) for seed in range(args.gpt_seeds)]
    for family, seed, build in runs:
        s = build(seed)
        extra = train(s.adapter, s.retain, replace(s.train_cfg, seed=seed + 300), show_progress=False).model
        token = unlearn(s.adapter, s.original, s.forget, s.retain,
                        UnlearnConfig(method="gradient_ascent", steps=1, learning_rate=1e-4, optimizer="sgd")).model
        candidates = {"retrain_a": (s.retrained, 1), "retrain_b": (extra, 1), "original": (s.original, 0),
                      "token_ga_step": (token, 0)}
        for name, cfg in APPROXIMATE.items():
            candidates[name] = (unlearn(s.adapter, s.original, s.forget, s.retain, cfg).model, None)
        for name, (model, label) in candidates.items():
            v = check.run(UnlearningInputs(adapter=s.adapter, original=s.original, unlearned=model, forget=s.forget,
                                           retain=s.retain, holdout=s.holdout, validation=s.validation,
                                           reference=s.reference))
            rows.append({"family": family, "seed": seed, "candidate": name, "unlearned": label, "passed": v.passed,
                         "severity": v.severity,
                         "failed": v.criteria.filter(~v.criteria["passed"])["criterion"].to_list(),
                         **{k: v.metrics[k] for k in ("mia_auc_loss_unlearned", "mia_auc_loss_reference",
                                                       "mia_auc_loss_original", "privleak", "forget_quality",
                                                       "remind_auc_forget_holdout_unlearned")}})
            print(family, seed, name, v.passed, round(v.severity, 3), flush=True)
    summary = {"mlp_seeds": args.seeds, "gpt_seeds": args.gpt_seeds,
               **{f"{f}/{k}": v for f in ("mlp", "gpt", "all") for k, v in summarise(rows, f).items()},
               "seconds": round(time.monotonic() - started, 1)}
    out = Path(__file__).with_name("separation.json")
    write_json({"summary": summary, "rows": rows}, out)
    print(json.dumps(summary, indent=2))


def summarise(all_rows: list[dict], family: str) -> dict:
    """Separation AUC, verdict accuracy and MIA AUCs over one model family's rows (or ``all``)."""
    rows = [r for r in all_rows if family in ("all", r["family"])]
    if not rows:
        return {}
    labelled = [r for r in rows if r["unlearned"] is not None]
    y = np.array([1 - r["unlearned"] for r in labelled])  # positive = NOT unlearned
    severity = np.array([r["severity"] for r in labelled])
    verdict_ok = [r["passed"] == bool(r["unlearned"]) for r in labelled]
    retrained_auc = [r["mia_auc_loss_unlearned"] for r in rows if r["candidate"].startswith("retrain")]
    original_auc = [r["mia_auc_loss_unlearned"] for r in rows if r["candidate"] == "original"]
    return {
        "separation_auc_severity": float(roc_auc_score(y, severity)),
        "verdict_accuracy": float(np.mean(verdict_ok)),
        "labelled_candidates": len(labelled),
        "retrained_mia_auc_loss_mean": float(np.mean(retrained_auc)),
        "retrained_mia_auc_loss_max_abs_dev_from_0.5": float(np.max(np.abs(np.array(retrained_auc) - 0.5))),
        "original_mia_auc_loss_mean": float(np.mean(original_auc)),
        "approximate_pass_rate": {n: float(np.mean([r["passed"] for r in rows if r["candidate"] == n]))
                                  for n in APPROXIMATE},
    }


if __name__ == "__main__":
    main()
