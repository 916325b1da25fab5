"""Upper bound of TracIn's levers on the digits LDS benchmark (issue 18, item 1: "TracIn LDS >= 0.62 ... checkpoint
choice, learning-rate weights, projection").

Every TracInCP variant that picks checkpoints and weights them is a non-negative combination
``sum_{c,l} w_{c,l} <g_l(z; theta_c), g_l(q; theta_c)>`` of per-checkpoint, per-parameter-tensor dot products
(checkpoint choice = which ``w_c`` are zero; learning-rate weights = ``w_c = lr_c``; per-layer weighting = ``w`` also
depends on the tensor ``l``). This script computes those terms for the initialisation and all 40 epoch checkpoints
of the ``lds_digits`` SGD trajectory (seed 0; 41 x 4 tensors = 164 terms) and then *fits* the weights to the ground
truth itself, maximising a smooth surrogate of LDS (mean over queries of the Pearson correlation between the
predicted subset outcome and the ranks of the true one), and reports the true LDS (Spearman) of the fitted weights:

- ``in-sample``: weights fitted on all 100 queries and scored on the same queries: an optimistic upper bound on
  what any checkpoint choice / weighting can reach on this benchmark;
- ``cross-fitted``: weights fitted on one half of the queries and scored on the other (both halves): what a weighting
  tuned on held-out queries would give a user;
- families: checkpoint weights only (41, >= 0), checkpoint x tensor weights (164, >= 0), and any signed combination of
  the 164 terms (not TracIn any more: a loose bound).

Projection: a random projection P with E[P P^T] = I only adds noise to the same dot products, so it cannot raise
the expectation; the script measures its spread with Gaussian 512 sketches of the 5-checkpoint recipe (10 seeds).

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.tracin_weight_bound`` (needs the two outcome caches of
``tracin_vs_peer_lds``; JSON in ``benchmarks/influence/results/tracin_weight_bound.json``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch.func import functional_call, grad, vmap

from benchmarks.influence.lds_digits import Problem
from benchmarks.influence.sgd_ground_truth import sgd_run
from benchmarks.influence.tracin_vs_peer_lds import FIVE, add_cache_arguments, benchmark_inputs, lds_all
from curation.attribution.evaluation import linear_datamodeling_score
from curation.gradients.projection import ProjectionConfig, Projector
from curation.io import write_json
from curation.progress import progress_bar

FAMILIES = ("checkpoint weights >= 0", "checkpoint x tensor weights >= 0", "signed combination of all terms")


def tensor_terms(problem: Problem, model: torch.nn.Module) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
    """Per parameter tensor ``l``: ``[n_train, n_query]`` dot products of loss gradients; and the flat train and query
    gradients (for the projection spread)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(pr: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, pr, (x[None],)), y[None])

    per = vmap(grad(loss), (None, 0, 0))
    g = [t.reshape(t.shape[0], -1) for t in per(params, problem.x, problem.y).values()]
    q = [t.reshape(t.shape[0], -1) for t in per(params, problem.xq, problem.yq).values()]
    return [(a @ b.T).numpy() for a, b in zip(g, q)], torch.cat(g, 1), torch.cat(q, 1)


def surrogate(pred: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Mean over queries of Pearson(pred[:, j], ranks[:, j]) (differentiable stand-in for LDS)."""
    p = pred - pred.mean(0)
    r = ranks - ranks.mean(0)
    return ((p * r).sum(0) / (p.norm(dim=0) * r.norm(dim=0) + 1e-12)).mean()


def fit_weights(subset_terms: torch.Tensor, ranks: torch.Tensor, *, signed: bool, steps: int = 6000) -> torch.Tensor:
    """Weights over the first axis of ``subset_terms`` ``[T, K, m]`` maximising ``surrogate(-w . terms, ranks)``,
    started from equal weights; non-negative through ``w = exp(theta)`` unless ``signed``."""
    theta = (torch.ones if signed else torch.zeros)(subset_terms.shape[0], dtype=subset_terms.dtype)
    theta.requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=0.05)
    for _ in range(steps):
        w = theta if signed else theta.exp()
        loss = -surrogate(-torch.einsum("t,tkm->km", w, subset_terms), ranks)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (theta if signed else theta.exp()).detach()


def bound(terms: np.ndarray, groups: np.ndarray, masks: np.ndarray, truth: np.ndarray, queries: np.ndarray, *,
          signed: bool) -> np.ndarray:
    """Fitted per-term weights (``groups[t]`` ties term ``t`` to a shared weight) on the ``queries`` columns; each
    term is scaled to unit mean magnitude first so that equal starting weights mix them evenly."""
    scale = np.array([np.abs(t).mean() for t in terms]) + 1e-30
    subset_terms = torch.from_numpy(np.stack([masks @ (t[:, queries] / s) for t, s in zip(terms, scale)]))
    group_terms = torch.stack([subset_terms[groups == g].sum(0) for g in range(groups.max() + 1)])
    ranks = torch.from_numpy(np.apply_along_axis(rankdata, 0, truth[:, queries]))
    w = fit_weights(group_terms, ranks, signed=signed).numpy()
    return w[groups] / scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/influence/results/tracin_weight_bound.json")
    add_cache_arguments(parser)
    parser.add_argument("--projection-seeds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    setup, problem, masks, truths, _ = benchmark_inputs(args)
    truths = {k: truths[k] for k in ("lbfgs", "sgd")}

    snapshots = sgd_run(problem, None, 0, snapshots=True)[1]
    per_ckpt, flat = [], []
    with progress_bar(total=len(snapshots), description="per-tensor dot products") as advance:
        for lr, model in snapshots:
            blocks, g, q = tensor_terms(problem, model)
            per_ckpt.append((lr, blocks))
            flat.append((g, q))
            advance(1)
    n_tensors = len(per_ckpt[0][1])
    terms = np.stack([b for _, blocks in per_ckpt for b in blocks])  # [41 * n_tensors, n, m], checkpoint-major
    lr_weights = np.repeat([lr for lr, _ in per_ckpt], n_tensors)
    by_ckpt = np.repeat(np.arange(len(per_ckpt)), n_tensors)
    by_term = np.arange(len(terms))
    reference = {"init + 40 ckpts, lr-weighted (best TracIn proper)": lds_all(truths, masks, np.tensordot(
        lr_weights, terms, 1)), "5 ckpts, lr-weighted (library recipe)": lds_all(truths, masks, sum(
            per_ckpt[i][0] * sum(per_ckpt[i][1]) for i in FIVE))}

    m = problem.yq.shape[0]
    halves = np.array_split(np.random.default_rng(0).permutation(m), 2)
    fitted: dict[str, dict] = {}
    for family, groups, signed in zip(FAMILIES, (by_ckpt, by_term, by_term), (False, False, True)):
        row: dict[str, dict] = {}
        for name, truth in truths.items():
            w_all = bound(terms, groups, masks, truth, np.arange(m), signed=signed)
            in_sample = lds_all({name: truth}, masks, np.tensordot(w_all, terms, 1))[name]
            cross = []
            for fit_on, score_on in ((halves[0], halves[1]), (halves[1], halves[0])):
                w = bound(terms, groups, masks, truth, fit_on, signed=signed)
                cross.append(linear_datamodeling_score(np.tensordot(w, terms, 1)[:, score_on], masks,
                                                       truth[:, score_on]))
            ckpt_share = np.bincount(by_ckpt, weights=np.abs(w_all) * np.abs(terms).mean((1, 2)))
            row[name] = {"in_sample": in_sample, "cross_fitted": round(float(np.mean(cross)), 4),
                         "weight_share_by_checkpoint": np.round(ckpt_share / ckpt_share.sum(), 3).tolist()}
        fitted[family] = row
        print(f"{family:36s} " + "  ".join(f"{k}: in-sample {v['in_sample']:.3f} cross {v['cross_fitted']:.3f}"
                                           for k, v in row.items()))

    spread = []
    for seed in range(args.projection_seeds):
        projector = Projector(flat[0][0].shape[1], ProjectionConfig(kind="gaussian", dim=512, seed=seed))
        matrix = sum(per_ckpt[i][0] * (projector(flat[i][0]) @ projector(flat[i][1]).T).numpy() for i in FIVE)
        spread.append(lds_all(truths, masks, matrix))
    projection = {k: {"mean": round(float(np.mean([s[k] for s in spread])), 4),
                      "min": min(s[k] for s in spread), "max": max(s[k] for s in spread)} for k in truths}
    results = {"setup": setup.__dict__ | {"retrain_seeds": list(setup.retrain_seeds)},
               "checkpoints": "initialisation + 40 epoch ends of the seed-0 lds_digits SGD run",
               "n_tensors": n_tensors, "n_terms": len(terms), "reference": reference, "fitted": fitted,
               "projection_gaussian512_5ckpts": projection, "target": 0.62,
               "seconds": round(time.perf_counter() - t0, 1)}
    write_json(results, Path(args.out))
    print("reference", reference)
    print("projection spread", projection)


if __name__ == "__main__":
    main()
