"""Linear datamodeling score (LDS) of our influence methods on a 64-128-10 MLP on scikit-learn digits.

Setup (shared by the slow test ``tests/unit/attribution/test_influence_lds.py``): clean digits (1,437 train / 360
test, features in [0, 1]), float64 MLP trained to (near) convergence of ``mean CE + wd/2 ||θ||²`` with full-batch
L-BFGS. Ground truth: 50 random half-size subsets, each retrained twice (initialisation seeds 0 and 1, shared by
all subsets); the outcome of a query is its test loss averaged over the two retrains. Every method scores the
model trained on the full set (seed 0); LDS = mean over queries of the Spearman correlation across subsets.
Cheap methods score 100 test queries; CG and LiSSA (one solve per query) the first 20, and every method is also
reported on those 20 so that all are compared on one query set.
TracIn is included when ``curation.attribution.tracin`` exists; the model has no SGD trajectory, so it runs on the
final checkpoint only (gradient dot products).

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.lds_digits --out benchmarks/influence/results/lds_digits.json``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from curation.attribution.base import CheckpointModel, ScoreResult, ScoringContext
from curation.attribution.ekfac import EKFACConfig, EKFACInfluence
from curation.attribution.evaluation import linear_datamodeling_score, random_subsets
from curation.attribution.influence_cg import CGInfluence, CGInfluenceConfig
from curation.attribution.influence_lissa import LiSSAInfluence, LiSSAInfluenceConfig
from curation.data.digits import DigitsConfig, build_digits
from curation.io import atomic_path, write_json
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LDSSetup:
    """Everything that defines the ground truth."""

    weight_decay: float = 1e-2
    max_iter: int = 200
    n_subsets: int = 50
    retrain_seeds: tuple[int, ...] = (0, 1)
    n_queries: int = 100
    n_queries_expensive: int = 20
    seed: int = 0


@dataclass
class Problem:
    setup: LDSSetup
    adapter: MLPClassifierAdapter
    train: pl.DataFrame
    queries: pl.DataFrame
    x: torch.Tensor
    y: torch.Tensor
    xq: torch.Tensor
    yq: torch.Tensor


def build_problem(setup: LDSSetup) -> Problem:
    """Clean digits, float64 MLP adapter and a seeded sample of test queries."""
    train, test, _ = build_digits(DigitsConfig(noise_fraction=0.0))
    rng = np.random.default_rng(setup.seed)
    queries = test[np.sort(rng.choice(test.height, setup.n_queries, replace=False))]
    adapter = MLPClassifierAdapter(ClassifierConfig(hidden=(128,), dtype="float64"))
    tb, qb = adapter.collate(train), adapter.collate(queries)
    return Problem(setup, adapter, train, queries, tb["x"], tb["y"], qb["x"], qb["y"])


def train_mlp(problem: Problem, mask: np.ndarray | None, seed: int) -> nn.Module:
    """Full-batch L-BFGS on ``mean CE + wd/2 ||θ||²`` over the rows in ``mask`` from initialisation ``seed``."""
    torch.manual_seed(seed)
    model = problem.adapter.build_model()
    sel = torch.ones(len(problem.y), dtype=torch.bool) if mask is None else torch.from_numpy(mask)
    x, y, wd = problem.x[sel], problem.y[sel], problem.setup.weight_decay
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=problem.setup.max_iter, tolerance_grad=1e-9,
                            tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) + wd / 2 * sum((p * p).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    model.eval()
    return model


@torch.no_grad()
def query_losses(problem: Problem, model: nn.Module) -> np.ndarray:
    return F.cross_entropy(model(problem.xq), problem.yq, reduction="none").numpy()


def lds_outcomes(problem: Problem, masks: np.ndarray) -> np.ndarray:
    """``[n_subsets, n_queries]`` query losses averaged over the retrain seeds."""
    seeds = problem.setup.retrain_seeds
    out = np.zeros((len(masks), problem.queries.height))
    with progress_bar(total=len(masks) * len(seeds), description="LDS retrains") as advance:
        for k, mask in enumerate(masks):
            for seed in seeds:
                out[k] += query_losses(problem, train_mlp(problem, mask, seed)) / len(seeds)
                advance(1)
    return out


def scorers(weight_decay: float) -> dict[str, tuple[object, bool]]:
    """The methods compared: ``name -> (scorer, expensive)``; expensive ones run on the first queries only.

    CG runs on the Gauss-Newton matrix (the MLP's Hessian is indefinite at damping = wd, so plain CG stops with a
    negative-curvature error); LiSSA runs on the Hessian, where its truncated recursion stays stable.
    """
    methods: dict[str, tuple[object, bool]] = {
        "ekfac": (EKFACInfluence(EKFACConfig(damping=None, self_influence=False)), False),
        "ekfac_damping_wd": (EKFACInfluence(EKFACConfig(damping=weight_decay, self_influence=False)), False),
        "influence_cg_gauss_newton": (CGInfluence(CGInfluenceConfig(
            damping=weight_decay, max_iter=100, tol=1e-5, curvature="gauss_newton")), True),
        "influence_lissa": (LiSSAInfluence(LiSSAInfluenceConfig(
            damping=weight_decay, depth=200, batch_size=256)), True),
    }
    if importlib.util.find_spec("curation.attribution.tracin") is not None:
        from curation.attribution.tracin import TracInConfig, TracInScorer

        methods["tracin_final_checkpoint"] = (TracInScorer(TracInConfig(normalize="none")), False)
    return methods


def cached_outcomes(problem: Problem, masks: np.ndarray, cache: Path | None) -> tuple[np.ndarray, float | None]:
    """Retrain outcomes, reusing ``cache`` (an .npz keyed by the setup) when it matches; returns the seconds spent
    retraining (``None`` when read from the cache)."""
    key = json.dumps(problem.setup.__dict__ | {"retrain_seeds": list(problem.setup.retrain_seeds)}, sort_keys=True)
    if cache is not None and cache.exists():
        with np.load(cache) as saved:
            if str(saved["setup"]) == key and np.array_equal(saved["masks"], masks):
                return saved["outcomes"], None
    start = time.perf_counter()
    outcomes = lds_outcomes(problem, masks)
    seconds = time.perf_counter() - start
    if cache is not None:
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, setup=np.array(key), masks=masks, outcomes=outcomes)
    return outcomes, seconds


def run(setup: LDSSetup, methods: list[str] | None = None, cache: Path | None = None) -> dict:
    """Train, retrain on subsets, score with every method; returns the JSON-ready results.

    ``lds`` is over all queries (cheap methods only); ``lds_first_queries`` over the first
    ``setup.n_queries_expensive`` queries for every method, so all methods are compared on one query set.
    """
    problem = build_problem(setup)
    chosen = {n: m for n, m in scorers(setup.weight_decay).items() if not methods or n in methods}
    model = train_mlp(problem, None, setup.retrain_seeds[0])
    masks = random_subsets(problem.train.height, setup.n_subsets, seed=setup.seed)
    outcomes, retrain_seconds = cached_outcomes(problem, masks, cache)
    k = setup.n_queries_expensive
    contexts = {
        expensive: ScoringContext(adapter=problem.adapter, checkpoints=(CheckpointModel(model=model),),
                                  train=problem.train, queries=problem.queries[:k] if expensive else problem.queries,
                                  batch_size=256)
        for expensive in (False, True)
    }
    results: dict = {"setup": setup.__dict__ | {"retrain_seeds": list(setup.retrain_seeds)},
                     "retrain_seconds": retrain_seconds, "outcomes_from_cache": retrain_seconds is None,
                     "methods": {}}
    for name, (scorer, expensive) in chosen.items():
        t0 = time.perf_counter()
        result: ScoreResult = scorer.score(contexts[expensive])  # type: ignore[attr-defined]
        row = {"seconds": time.perf_counter() - t0, "n_queries": len(result.query_ids),
               "lds_first_queries": linear_datamodeling_score(result.matrix[:, :k], masks, outcomes[:, :k])}
        if not expensive:
            row["lds"] = linear_datamodeling_score(result.matrix, masks, outcomes)
        results["methods"][name] = row
        log.info("%s: %s", name, row)
    return results


def setup_k(results: dict) -> int:
    return int(results["setup"]["n_queries_expensive"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/influence/results/lds_digits.json")
    parser.add_argument("--methods", nargs="*", default=None, help="subset of method names (default: all)")
    parser.add_argument("--subsets", type=int, default=LDSSetup.n_subsets)
    parser.add_argument("--queries", type=int, default=LDSSetup.n_queries)
    parser.add_argument("--cache", default="benchmarks/influence/results/lds_digits_outcomes.npz",
                        help="npz of retrain outcomes reused when the setup matches ('' = no cache)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    results = run(LDSSetup(n_subsets=args.subsets, n_queries=args.queries), args.methods,
                  Path(args.cache) if args.cache else None)
    write_json(results, args.out)
    for name, row in results["methods"].items():
        every = f"{row['lds']:.3f}" if "lds" in row else "  -  "
        print(f"{name:28s} LDS all {every}  first {setup_k(results)} {row['lds_first_queries']:.3f}  "
              f"({row['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
