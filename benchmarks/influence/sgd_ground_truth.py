"""SGD-retrain ground truth for the digits LDS benchmark and the SGD runs that TracIn traces (issue 18).

``lds_digits`` retrains every half subset to convergence with L-BFGS; removing examples then acts through the
inverse Hessian, which TracIn's gradient dot products do not model. TracIn approximates the effect of an example on
an *SGD trajectory*, so this module adds a second ground truth whose retrains follow the trajectory's own recipe
(the ``lds_digits`` SGD recipe: batch 32, 40 epochs, cosine learning rate from 0.3 down to 0.03, no momentum, weight
decay 0.01), on the same 50 masks, with initialisation/order seeds shared by all subsets (as the L-BFGS ground truth
shares its init seeds); a query's outcome is its test loss averaged over the seeds. Per-seed outcomes are cached
(``tracin_sgd_outcomes.npz``) so the figure can be reported for 1..S seeds.

``sgd_run`` reproduces ``curation.training.loop.train`` for this recipe step for step (same seeded initialisation,
same permutation order, same learning rate per step) on in-memory tensors, which skips the per-step table slicing;
``check_matches_train_loop`` verifies bit-identical parameters against ``train`` (recorded in the benchmark JSON).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.influence.lds_digits import Problem, query_losses
from curation.io import atomic_path
from curation.progress import progress_bar
from curation.training.loop import TrainConfig, learning_rate_at, train, training_order


def sgd_config(problem: Problem, seed: int) -> TrainConfig:
    """The ``lds_digits`` SGD recipe with init/order ``seed``."""
    return TrainConfig(epochs=40, batch_size=32, optimizer="sgd", momentum=0.0, learning_rate=0.3,
                       weight_decay=problem.setup.weight_decay, schedule="cosine", n_checkpoints=40, seed=seed)


def sgd_run(problem: Problem, mask: np.ndarray | None, seed: int, *, snapshots: bool = False,
            ) -> tuple[nn.Module, list[tuple[float, nn.Module]]]:
    """Train on the rows in ``mask`` (all when ``None``); with ``snapshots`` also return the model at step 0 (learning
    rate of the first step) followed by one ``(learning rate of the step just taken, model)`` per epoch end."""
    cfg = sgd_config(problem, seed)
    torch.manual_seed(cfg.seed)
    model = problem.adapter.build_model()
    sel = torch.ones(len(problem.y), dtype=torch.bool) if mask is None else torch.from_numpy(mask)
    x, y = problem.x[sel], problem.y[sel]
    order = training_order(len(y), cfg)
    steps = math.ceil(len(order) / cfg.batch_size)
    marks = {max(1, round(steps * (i + 1) / cfg.n_checkpoints)) for i in range(cfg.n_checkpoints)}
    opt = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.0, weight_decay=cfg.weight_decay)
    taken = [(learning_rate_at(cfg, 0, steps), copy.deepcopy(model).eval())] if snapshots else []
    model.train()
    for step in range(steps):
        idx = torch.from_numpy(order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
        lr = learning_rate_at(cfg, step, steps)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if snapshots and step + 1 in marks:
            taken.append((lr, copy.deepcopy(model).eval()))
    return model.eval(), taken


def check_matches_train_loop(problem: Problem, mask: np.ndarray, seed: int) -> float:
    """Largest absolute parameter difference between ``sgd_run`` and ``train`` on the same subset and seed."""
    ours, _ = sgd_run(problem, mask, seed)
    ref = train(problem.adapter, problem.train.filter(mask), sgd_config(problem, seed), show_progress=False).model
    return max(float((a - b).detach().abs().max()) for a, b in zip(ours.parameters(), ref.parameters(), strict=True))


def sgd_outcomes(problem: Problem, masks: np.ndarray, seeds: tuple[int, ...], cache: Path | None,
                 ) -> tuple[np.ndarray, float]:
    """Per-seed query losses ``[n_seeds, n_subsets, n_queries]`` of the SGD retrains, reusing (and extending, one
    seed at a time) ``cache`` when its setup and masks match; returns the seconds spent retraining now."""
    key = json.dumps(problem.setup.__dict__ | {"retrain_seeds": list(problem.setup.retrain_seeds),
                                                "recipe": sgd_config(problem, 0).__dict__ | {"seed": None}},
                     sort_keys=True)
    done: dict[int, np.ndarray] = {}
    if cache is not None and cache.exists():
        with np.load(cache) as saved:
            if str(saved["setup"]) == key and np.array_equal(saved["masks"], masks):
                done = {int(s): saved["outcomes"][i] for i, s in enumerate(saved["seeds"])}
    start = time.perf_counter()
    todo = [s for s in seeds if s not in done]
    with progress_bar(total=len(todo) * len(masks), description="SGD retrains") as advance:
        for seed in todo:
            rows = []
            for mask in masks:
                rows.append(query_losses(problem, sgd_run(problem, mask, seed)[0]))
                advance(1)
            done[seed] = np.stack(rows)
            if cache is not None:
                order = sorted(done)
                with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, setup=np.array(key), masks=masks, seeds=np.array(order),
                             outcomes=np.stack([done[s] for s in order]))
    return np.stack([done[s] for s in seeds]), time.perf_counter() - start
