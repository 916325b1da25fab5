"""Benchmark (issue 18): the null spread of the reference-calibrated membership AUC, which sets the width of the
``mia_auc_calibrated_gap`` criterion (``curation.unlearning.calibrated.calibrated_null_se``).

Per request seed ``r``: the demo's digits split (seed 0) and recipe (params.yaml ``train_classifier``), a forget
request of ``--size`` random train rows (seed ``r``), and ``--retrains`` models trained without them (seeds
0..M-1). Every retrain in turn is the candidate (an exact retrain: H0 holds), calibrated by ``K`` of the others
(cyclically), with the product's ``calibrated_scores`` and ``mia_auc`` on forget vs holdout rows. Reports, per
``K``, the null AUCs' spread around 0.5 (root mean square of ``AUC - 0.5``) divided by the Mann-Whitney null
standard error at the pool sizes, next to the criterion's model ``sqrt(1 + 1/K)``; and the untouched original's
calibrated AUC for scale.

Run: OMP_NUM_THREADS=1 python -m benchmarks.unlearning.calibrated_null [--requests 6] [--retrains 6] [--size 100]
Writes benchmarks/unlearning/results/calibrated_null.json.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from curation.config import load
from curation.config.stages import TrainClassifierConfig
from curation.data.digits import DigitsConfig, build_digits
from curation.io import write_json
from curation.io.params import load_stage_params
from curation.plugins import get_plugin
from curation.progress import progress_bar
from curation.training import train
from curation.unlearning.calibrated import auc_null_se, calibrated_scores
from curation.unlearning.membership import membership_scores
from curation.unlearning.metrics import mia_auc
from curation.unlearning.requests import sample_request, split_forget_retain

OUT = Path(__file__).parent / "results" / "calibrated_null.json"
KS = (1, 2, 3, 5)


def log_likelihoods(request_seed: int, size: int, n_retrains: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(original [rows], retrains [M, rows], n_forget)``: mean log-likelihood of forget then holdout rows."""
    recipe = load(TrainClassifierConfig, load_stage_params("train_classifier"), where="params.yaml:train_classifier")
    train_rows, holdout, _ = build_digits(DigitsConfig(seed=0))
    forget, retain = split_forget_retain(train_rows, sample_request(train_rows.select("example_id"), size,
                                                                    seed=request_seed))
    adapter = get_plugin("curation.model_adapters", recipe.adapter)(recipe.model)
    cfg = replace(recipe.train, n_checkpoints=1)
    pool = pl.concat([forget, holdout], how="vertical_relaxed")

    def ll(model: torch.nn.Module) -> np.ndarray:
        return membership_scores(adapter, model, pool, k=1.0)["score_loss"].to_numpy().astype(float)

    original = ll(train(adapter, train_rows, replace(cfg, seed=0), show_progress=False).model)
    retrains = np.stack([ll(train(adapter, retain, replace(cfg, seed=j), show_progress=False).model)
                         for j in range(n_retrains)])
    return original, retrains, forget.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--retrains", type=int, default=6)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    null: dict[int, list[float]] = {k: [] for k in KS}
    original_auc: list[float] = []
    n_holdout = 0
    with progress_bar(total=args.requests, description="request seeds") as advance:
        for r in range(args.requests):
            original, retrains, n_f = log_likelihoods(r, args.size, args.retrains)
            n_holdout = original.size - n_f
            original_auc.append(mia_auc(*np.split(calibrated_scores(original, retrains[:3]), [n_f])))
            for k in KS:
                for j in range(args.retrains):
                    others = retrains[[(j + 1 + i) % args.retrains for i in range(k)]]
                    null[k].append(mia_auc(*np.split(calibrated_scores(retrains[j], others), [n_f])))
            advance(1)
    se = auc_null_se(args.size, n_holdout)
    rows = {str(k): {"n_candidates": len(v), "mean_auc": round(float(np.mean(v)), 4),
                     "rms_dev_over_se": round(float(np.sqrt(np.mean((np.array(v) - 0.5) ** 2)) / se), 3),
                     "model_sqrt_1_plus_1_over_k": round(math.sqrt(1 + 1 / k), 3)} for k, v in null.items()}
    write_json({"size": args.size, "n_holdout": n_holdout, "mann_whitney_se": round(se, 5), "null_by_k": rows,
                "original_calibrated_auc_k3": [round(a, 4) for a in original_auc],
                "seconds": round(time.perf_counter() - t0, 1)}, OUT)
    for k, row in rows.items():
        print(f"K={k}: null AUC rms/se {row['rms_dev_over_se']} (model {row['model_sqrt_1_plus_1_over_k']}), "
              f"mean {row['mean_auc']}, n {row['n_candidates']}")


if __name__ == "__main__":
    main()
