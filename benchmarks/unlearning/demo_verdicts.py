"""Benchmark (issue 18): the demo's unlearning verdicts at demo scale, over seeds.

Per seed ``s``: the demo's digits split (1,437 train rows, 10 % flipped labels; 360 clean test rows = holdout) with
split seed ``s``; the original trained with the demo recipe (params.yaml ``train_classifier``, seed ``s``); a
forget request of ``--size`` random train rows (seed ``s``); the reference = a retrain without them (seed ``s``) and
the calibration retrains (seeds ``s + c`` for the demo's ``calibration_seeds`` ``c``), as in ``unlearn_retrain``.
Candidates with a known answer:

- ``unlearned``: the demo's ``unlearn`` operator (params.yaml), expected to pass;
- ``exact_retrain``: one more retrain without the forget rows (seed ``s + 100``), must pass;
- ``original``: the untouched model (the Check's power test), must fail;
- ``gradient_difference_20``: the operator the demo used before issue 18 (20 Adam steps), descriptive.

Reports per candidate the calibrated MIA AUC (and the raw loss AUC) over seeds, verdicts, and the separation rate:
the fraction of seeds where the original fails and the demo's unlearned model passes (a conclusive "forgotten").

Run: OMP_NUM_THREADS=1 python -m benchmarks.unlearning.demo_verdicts [--seeds 10] [--size 100]
Writes benchmarks/unlearning/results/demo_verdicts[_<size>].json.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from curation.config import load
from curation.config.stages import TrainClassifierConfig
from curation.data.digits import DigitsConfig, build_digits
from curation.io import write_json
from curation.io.params import load_stage_params
from curation.plugins import get_plugin
from curation.training import train
from curation.unlearning.config import UnlearnRetrainConfig, UnlearnStageConfig, VerifyUnlearningConfig
from curation.unlearning.operators import UnlearnConfig, unlearn
from curation.unlearning.requests import sample_request, split_forget_retain
from curation.unlearning.verify import UnlearningCheck, UnlearningInputs

OUT = Path(__file__).parent / "results"


def one_seed(seed: int, size: int) -> dict:
    """Verdicts of every candidate for one seed."""
    recipe = load(TrainClassifierConfig, load_stage_params("train_classifier"), where="params.yaml:train_classifier")
    retrain_cfg = load(UnlearnRetrainConfig, load_stage_params("unlearn_retrain"), where="unlearn_retrain")
    op = load(UnlearnStageConfig, load_stage_params("unlearn"), where="unlearn").unlearn
    check_cfg = load(VerifyUnlearningConfig, load_stage_params("verify_unlearning"), where="verify_unlearning").check
    train_rows, holdout, _ = build_digits(DigitsConfig(seed=seed))
    forget, retain = split_forget_retain(train_rows, sample_request(train_rows.select("example_id"), size, seed=seed))
    adapter = get_plugin("curation.model_adapters", recipe.adapter)(recipe.model)
    cfg = replace(recipe.train, seed=seed, n_checkpoints=1)
    torch.manual_seed(seed)
    original = train(adapter, train_rows, cfg, show_progress=False).model
    reference = train(adapter, retain, cfg, show_progress=False).model
    calibration = [train(adapter, retain, replace(cfg, seed=seed + c), show_progress=False).model
                   for c in retrain_cfg.calibration_seeds]
    op = replace(op, train=replace(op.train, seed=seed)) if op.method in ("finetune", "retrain") else op
    candidates = {
        "unlearned": unlearn(adapter, original, forget, retain, op).model,
        "exact_retrain": train(adapter, retain, replace(cfg, seed=seed + 100), show_progress=False).model,
        "gradient_difference_20": unlearn(adapter, original, forget, retain, UnlearnConfig(
            method="gradient_difference", steps=20, learning_rate=1e-3, optimizer="adam", batch_size=32)).model,
    }
    check = UnlearningCheck(check_cfg)
    result: dict = {"seed": seed, "n_forget": forget.height, "n_holdout": holdout.height}
    for name, model in candidates.items():
        v = check.run(UnlearningInputs(adapter=adapter, original=original, unlearned=model, forget=forget,
                                       retain=retain, holdout=holdout, validation=holdout, reference=reference,
                                       calibration=calibration))
        m = v.metrics
        result[name] = {"passed": v.passed, "verdict": v.verdict, "severity": v.severity,
                        "failed": v.criteria.filter(~v.criteria["passed"])["criterion"].to_list(),
                        "mia_auc_calibrated": m["mia_auc_calibrated_unlearned"],
                        "mia_auc_loss": m["mia_auc_loss_unlearned"],
                        "tpr_at_1fpr_calibrated": m["mia_tpr_at_1fpr_calibrated_unlearned"]}
        if name == "unlearned":
            result["original"] = {"passed": not bool(m["conclusive"]), "severity": m["original_severity"],
                                  "mia_auc_calibrated": m["mia_auc_calibrated_original"],
                                  "mia_auc_loss": m["mia_auc_loss_original"],
                                  "tpr_at_1fpr_calibrated": m["mia_tpr_at_1fpr_calibrated_original"],
                                  "power_min_forget_rows": m.get("power_min_forget_rows")}
            result["reference"] = {"mia_auc_calibrated": m["mia_auc_calibrated_reference"],
                                   "mia_auc_loss": m["mia_auc_loss_reference"],
                                   "threshold_calibrated": v.criteria.filter(
                                       v.criteria["criterion"] == "mia_auc_calibrated_gap")["threshold"].item()}
    print({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk in
                                                     ("passed", "verdict", "mia_auc_calibrated")})
           for k, v in result.items()}, flush=True)
    return result


def summarise(rows: list[dict]) -> dict:
    """Means / ranges of the AUCs and verdict rates over seeds."""
    def stats(key: str, model: str) -> dict:
        vals = np.array([r[model][key] for r in rows], dtype=float)
        return {"mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max())}

    models = ("original", "reference", "unlearned", "exact_retrain", "gradient_difference_20")
    out = {m: {"mia_auc_calibrated": stats("mia_auc_calibrated", m), "mia_auc_loss": stats("mia_auc_loss", m)}
           for m in models}
    for m in ("original", "unlearned", "exact_retrain", "gradient_difference_20"):
        out[m]["pass_rate"] = float(np.mean([r[m]["passed"] for r in rows]))
    out["separation_rate"] = float(np.mean([(not r["original"]["passed"]) and r["unlearned"]["passed"] for r in rows]))
    out["conclusive_rate"] = float(np.mean([not r["original"]["passed"] for r in rows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.monotonic()
    rows = [one_seed(seed, args.size) for seed in range(args.seeds)]
    result = {"seeds": args.seeds, "size": args.size, "summary": summarise(rows), "per_seed": rows,
              "seconds": time.monotonic() - started}
    name = "demo_verdicts.json" if args.size == 100 else f"demo_verdicts_{args.size}.json"
    write_json(result, OUT / name)
    print(result["summary"])


if __name__ == "__main__":
    main()
