"""Cross-fitted label errors (``curate label-errors TABLE`` with no checkpoints) on digits with injected flips, with
cleanlab 2.9.0 side by side on the same out-of-fold probabilities.

Two settings:
- ``seeds``: the unit test's setup (``tests/unit/selection/test_cross_fit.py``: ``build_digits`` with
  test_fraction 0.55, 10 % flips, MLP hidden 64, 4 folds, 15 epochs) over data seeds 0-19; its min/max are where
  the test's thresholds come from.
- ``demo``: the demo's noisy digits (1,437 training rows, 10 % flips, seed 0) with the command's defaults
  (5 folds, 30 epochs, hidden 128).

cleanlab (its own venv, ``benchmarks/gbdt/cleanlab_worker.py``) ranks by self-confidence and decides with
``find_label_issues`` on the same probabilities, both with its default (prune_by_noise_rate) and with
``filter_by="confident_learning"`` (the confident joint's off-diagonal, the rule ``CrossFitResult.confident_issues``
implements), so the comparison checks our ranking and decision against the reference implementation.

    OMP_NUM_THREADS=1 python -m benchmarks.label_errors.cross_fit_digits
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from sklearn.metrics import average_precision_score

from benchmarks.gbdt.noise import cleanlab_scores
from curation.data.digits import DigitsConfig, build_digits
from curation.selection.cross_fit import CrossFitConfig, cross_fit
from curation.training.fit import build_adapter
from curation.training.loop import TrainConfig

OUT = Path(__file__).parent / "results" / "cross_fit_digits.json"
TEST_SETUP = {"test_fraction": 0.55, "hidden": [64], "folds": 4, "epochs": 15}


def run_case(digits: DigitsConfig, hidden: list[int], cfg: CrossFitConfig) -> dict:
    train, _, noisy = build_digits(digits)
    adapter = build_adapter("mlp", {"hidden": hidden}, train, source="digits")
    start = time.perf_counter()
    result = cross_fit(adapter, train, cfg, source="digits")
    seconds = time.perf_counter() - start
    truth = train["example_id"].is_in(noisy["example_id"].implode()).to_numpy()
    ours = result.confident_issues()
    peer = cleanlab_scores(result.labels, result.probabilities)
    peer_issue = peer["is_issue"].astype(bool)
    return {
        "rows": train.height, "flipped": int(truth.sum()), "cross_fit_seconds": seconds,
        "ours": {"average_precision": float(average_precision_score(truth, result.scores())),
                 "flagged": int(ours.sum()), "precision": float(truth[ours].mean()), "recall": float(ours[truth].mean())},
        "cleanlab": {"average_precision": float(average_precision_score(truth, 1 - peer["quality"])),
                     "flagged": int(peer_issue.sum()), "precision": float(truth[peer_issue].mean()),
                     "recall": float(peer_issue[truth].mean())},
        "cleanlab_confident_learning_filter": {"flagged": int(peer["is_issue_confident_learning"].sum()),
                                               "same_decision_as_ours": float(
                                                   (ours == peer["is_issue_confident_learning"]).mean())},
    }


def main() -> None:
    torch.set_num_threads(1)
    train_cfg = TrainConfig(epochs=TEST_SETUP["epochs"], batch_size=64, learning_rate=3e-3, n_checkpoints=1)
    seeds = []
    for seed in range(20):
        case = run_case(DigitsConfig(test_fraction=TEST_SETUP["test_fraction"], noise_fraction=0.1, seed=seed),
                        TEST_SETUP["hidden"], CrossFitConfig(folds=TEST_SETUP["folds"], train=train_cfg))
        seeds.append({"seed": seed, **case})
        print(seed, case["ours"], case["cleanlab"], flush=True)
    demo = run_case(DigitsConfig(), [128], CrossFitConfig())
    print("demo", demo, flush=True)
    summary = {side: {metric: [min(s[side][metric] for s in seeds), max(s[side][metric] for s in seeds)]
                      for metric in ("average_precision", "precision", "recall")} for side in ("ours", "cleanlab")}
    OUT.write_text(json.dumps({"test_setup": TEST_SETUP, "seed_ranges": summary, "seeds": seeds, "demo": demo},
                              indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
