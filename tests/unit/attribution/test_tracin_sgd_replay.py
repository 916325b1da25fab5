"""The SGD-retrain ground truth of the TracIn LDS benchmark (``benchmarks/influence/sgd_ground_truth.py``) claims
to replay ``curation.training.loop.train`` step for step; its per-epoch snapshots are the checkpoints TracIn
traces. Ground truth here = the project's training loop itself: parameters must be bit-identical, and the snapshot
learning rates must be the ones ``train`` records for the same steps."""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from benchmarks.influence.lds_digits import LDSSetup, build_problem
from benchmarks.influence.sgd_ground_truth import check_matches_train_loop, sgd_config, sgd_run
from curation.training.loop import train


def test_sgd_run_replays_the_training_loop_exactly() -> None:
    problem = build_problem(LDSSetup(n_queries=5))
    mask = np.zeros(problem.train.height, dtype=bool)
    mask[np.random.default_rng(0).choice(problem.train.height, 96, replace=False)] = True
    assert check_matches_train_loop(problem, mask, seed=3) == 0.0


def test_snapshots_are_the_training_loop_checkpoints() -> None:
    problem = build_problem(LDSSetup(n_queries=5))
    mask = np.zeros(problem.train.height, dtype=bool)
    mask[:64] = True
    final, snaps = sgd_run(problem, mask, 1, snapshots=True)
    assert len(snaps) == 41  # initialisation + one per epoch
    with tempfile.TemporaryDirectory() as folder:
        ref = train(problem.adapter, problem.train.filter(mask), sgd_config(problem, 1), checkpoint_dir=folder,
                    show_progress=False)
    assert [c["learning_rate"] for c in ref.checkpoints] == [lr for lr, _ in snaps[1:]]
    for a, b in zip(snaps[-1][1].parameters(), final.parameters(), strict=True):
        assert torch.equal(a, b)
