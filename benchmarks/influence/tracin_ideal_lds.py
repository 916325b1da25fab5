"""Ideal TracIn (Pruthi et al. 2020, eq. 1) on the digits LDS benchmark: the limit of "checkpoint choice" (issue 18).

TracInCP sums gradient dot products at a few saved checkpoints over *every* training example. Ideal TracIn follows
the actual SGD run step by step: at step ``t`` only the examples in the minibatch ``B_t`` move the parameters, and
their first-order effect on a query is ``(lr_t / |B_t|) <g(z; theta_t), g_q(theta_t)>`` (positive = the step lowered
the query's loss). Summed over all 1,797 steps of the ``lds_digits`` SGD recipe (seed 0, full data), this is the
most faithful trace of the trajectory that the SGD ground truth (``sgd_ground_truth``) retrains. The run replays
``sgd_ground_truth.sgd_run`` exactly (same initialisation, order and learning rates) and scores the same 100 queries
against both ground truths.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.tracin_ideal_lds`` (JSON in
``benchmarks/influence/results/tracin_ideal_lds.json``; needs both outcome caches, see ``tracin_vs_peer_lds``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from benchmarks.influence.lds_digits import Problem
from benchmarks.influence.sgd_ground_truth import sgd_config
from benchmarks.influence.tracin_vs_peer_lds import add_cache_arguments, benchmark_inputs, lds_all
from curation.io import write_json
from curation.training.loop import learning_rate_at, training_order


def ideal_tracin(problem: Problem, seed: int = 0) -> dict[str, np.ndarray]:
    """``[n_train, n_query]`` ideal-TracIn scores of the seed-``seed`` full-data SGD run: all steps, and the first
    and last halves of the run separately."""
    cfg = sgd_config(problem, seed)
    torch.manual_seed(cfg.seed)
    model = problem.adapter.build_model()
    order = training_order(len(problem.y), cfg)
    steps = math.ceil(len(order) / cfg.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.0, weight_decay=cfg.weight_decay)

    def loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    def flat(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.reshape(g.shape[0], -1) for g in vmap(grad(loss), (None, 0, 0))(params, x, y).values()], 1)

    halves = [np.zeros((len(problem.y), len(problem.yq))) for _ in range(2)]
    model.train()
    for step in range(steps):
        idx = torch.from_numpy(order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
        lr = learning_rate_at(cfg, step, steps)
        params = {k: v.detach() for k, v in model.named_parameters()}
        g, q = flat(params, problem.x[idx], problem.y[idx]), flat(params, problem.xq, problem.yq)
        np.add.at(halves[2 * step // steps], idx.numpy(), (lr / len(idx)) * (g @ q.T).numpy())
        for group in opt.param_groups:
            group["lr"] = lr
        batch_loss = F.cross_entropy(model(problem.x[idx]), problem.y[idx])
        opt.zero_grad(set_to_none=True)
        batch_loss.backward()
        opt.step()
    return {"all steps": halves[0] + halves[1], "first half of the steps": halves[0],
            "second half of the steps": halves[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/influence/results/tracin_ideal_lds.json")
    add_cache_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    setup, problem, masks, truths, _ = benchmark_inputs(args)
    rows = {f"ideal TracIn, seed-0 SGD run, {k}": {"lds": lds_all(truths, masks, v)}
            for k, v in ideal_tracin(problem).items()}
    write_json({"setup": setup.__dict__ | {"retrain_seeds": list(setup.retrain_seeds)}, "lds": rows,
                "seconds": round(time.perf_counter() - t0, 1)}, Path(args.out))
    for name, row in rows.items():
        print(f"{name:50s} " + "  ".join(f"{k} {v:.3f}" for k, v in row["lds"].items()))


if __name__ == "__main__":
    main()
