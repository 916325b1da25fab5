"""Linear datamodeling score (LDS) of our influence methods on a 64-128-10 MLP on scikit-learn digits.

Setup (shared by the slow test ``tests/unit/attribution/test_influence_lds.py``): clean digits (1,437 train / 360
test, features in [0, 1]), float64 MLP trained to (near) convergence of ``mean CE + wd/2 ||θ||²`` with full-batch
L-BFGS. Ground truth: 50 random half-size subsets, each retrained twice (initialisation seeds 0 and 1, shared by
all subsets); the outcome of a query is its test loss averaged over the two retrains. LDS = mean over queries of
the Spearman correlation across subsets. Every method scores the same 100 test queries (``lds``); ``lds_first_queries``
repeats the figure on the first 20 (the query set of earlier, 20-query runs of CG and LiSSA).

Which models each method sees (``model_sets``):
- ``final``: the model trained on the full set (seed 0) -- influence functions, TracIn on one checkpoint;
- ``sgd``: 5 evenly spaced checkpoints (with their learning rates) of the same MLP trained by plain minibatch SGD
  (batch 32, cosine learning rate from 0.3, same weight decay) -- multi-checkpoint TracIn and TRAK on a trajectory;
- ``subsets<M>``: M models trained with the L-BFGS recipe on random half subsets (masks drawn with another seed than
  the LDS masks), init seed = model index -- TRAK's independently trained ensemble, as in the TRAK paper;
- ``seeds5``: 5 full-data models with initialisation seeds 0-4.

TRAK's default damping (1e-6 of the mean eigenvalue of ``Phi^T Phi``) matches the reference code's
``lambda_reg = 0``; ``trak_damping_sweep`` shows LDS over the damping, and the ``_damping<d>`` methods use values read
off that sweep on these same queries (so they are optimistic, not held-out choices).

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.lds_digits --out benchmarks/influence/results/lds_digits.json``
(``--methods a b`` rescores only those and keeps the other methods' last results in the output file).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
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
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.attribution.trak import TRAKConfig, TRAKScorer
from curation.data.digits import DigitsConfig, build_digits
from curation.gradients.projection import ProjectionConfig
from curation.io import atomic_path, write_json
from curation.models.checkpoints import load_checkpoint
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.progress import progress_bar
from curation.training.loop import TrainConfig, train

log = logging.getLogger(__name__)

# LDS of peer libraries on this setup as quoted in issue 3 (measured by whoever filed it, not by this script).
REFERENCE_PEERS = {"pydvl_lissa": 0.81, "kronfluence_ekfac": 0.76, "dattri_arnoldi": 0.71, "tracin": 0.62,
                   "trak_5_checkpoints": 0.42}


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


@dataclass(frozen=True, kw_only=True)
class ModelSets:
    """How the models behind the trajectory and ensemble methods are trained (not part of the ground truth)."""

    sgd_epochs: int = 40
    sgd_batch_size: int = 32
    sgd_learning_rate: float = 0.3
    sgd_checkpoints: int = 5
    ensemble_size: int = 20
    ensemble_mask_seed: int = 1
    seed_models: int = 5


def sgd_checkpoints(problem: Problem, sets: ModelSets) -> tuple[CheckpointModel, ...]:
    """The MLP trained by plain minibatch SGD (no momentum, cosine schedule, the ground truth's weight decay) with
    ``sets.sgd_checkpoints`` evenly spaced checkpoints and the learning rate in force at each."""
    cfg = TrainConfig(epochs=sets.sgd_epochs, batch_size=sets.sgd_batch_size, optimizer="sgd", momentum=0.0,
                      learning_rate=sets.sgd_learning_rate, weight_decay=problem.setup.weight_decay,
                      schedule="cosine", n_checkpoints=sets.sgd_checkpoints, seed=problem.setup.seed)
    with tempfile.TemporaryDirectory(prefix="lds-sgd-") as folder:
        result = train(problem.adapter, problem.train, cfg, checkpoint_dir=folder, show_progress=False)
        out = []
        for ckpt in result.checkpoints:
            model = problem.adapter.build_model()
            model.load_state_dict(load_checkpoint(Path(folder) / ckpt["file"])[0])
            out.append(CheckpointModel(model=model.eval(), learning_rate=float(ckpt["learning_rate"])))
    return tuple(out)


def subset_ensemble(problem: Problem, sets: ModelSets) -> tuple[CheckpointModel, ...]:
    """``sets.ensemble_size`` models, model ``m`` trained (L-BFGS recipe, init seed ``m``) on a random half subset;
    the masks use ``sets.ensemble_mask_seed``, not the LDS masks' seed, so no ground-truth run is reused."""
    masks = random_subsets(problem.train.height, sets.ensemble_size, seed=sets.ensemble_mask_seed)
    with progress_bar(total=len(masks), description="TRAK ensemble") as advance:
        models = []
        for m, mask in enumerate(masks):
            models.append(CheckpointModel(model=train_mlp(problem, mask, m)))
            advance(1)
    return tuple(models)


def model_sets(problem: Problem, sets: ModelSets, final: nn.Module, needed: set[str]) -> dict[str, tuple]:
    """The model sets that the chosen methods need (see the module docstring)."""
    out: dict[str, tuple] = {"final": (CheckpointModel(model=final),)}
    if "sgd" in needed:
        out["sgd"] = sgd_checkpoints(problem, sets)
    if any(n.startswith("subsets") for n in needed):
        ensemble = subset_ensemble(problem, sets)
        out |= {n: ensemble[: int(n.removeprefix("subsets"))] for n in needed if n.startswith("subsets")}
    if "seeds5" in needed:
        out["seeds5"] = out["final"] + tuple(CheckpointModel(model=train_mlp(problem, None, s))
                                             for s in range(1, sets.seed_models))
    return out


def scorers(weight_decay: float) -> dict[str, tuple[object, str]]:
    """The methods compared: ``name -> (scorer, model set)``.

    CG runs on the Gauss-Newton matrix (the MLP's Hessian is indefinite at damping = wd, so plain CG stops with a
    negative-curvature error); LiSSA runs on the Hessian, where its truncated recursion stays stable. TracIn uses
    identity projection (exact gradient dot products, learning-rate weighted); TRAK the scorer's Gaussian
    projection to 512 dimensions (dattri's default) unless the name says ``identity``/``2048``.
    """
    gauss = {k: ProjectionConfig(kind="gaussian", dim=k) for k in (512, 2048)}
    trak = {
        "trak_sgd_checkpoints5": (gauss[512], "sgd"),
        "trak_full_data_seeds5": (gauss[512], "seeds5"),
        "trak_subsets1": (gauss[512], "subsets1"),
        "trak_subsets5": (gauss[512], "subsets5"),
        "trak_subsets5_proj2048": (gauss[2048], "subsets5"),
        "trak_subsets5_identity": (ProjectionConfig(kind="identity"), "subsets5"),
        "trak_subsets10": (gauss[512], "subsets10"),
        "trak_subsets20": (gauss[512], "subsets20"),
    }
    trak_damped = {
        "trak_sgd_checkpoints5_damping1": (gauss[512], "sgd", 1.0),
        "trak_subsets5_damping0.3": (gauss[512], "subsets5", 0.3),
        "trak_subsets20_damping0.3": (gauss[512], "subsets20", 0.3),
        "trak_subsets5_identity_damping10": (ProjectionConfig(kind="identity"), "subsets5", 10.0),
    }
    return {
        "ekfac": (EKFACInfluence(EKFACConfig(damping=None, self_influence=False)), "final"),
        "ekfac_damping_wd": (EKFACInfluence(EKFACConfig(damping=weight_decay, self_influence=False)), "final"),
        "influence_cg_gauss_newton": (CGInfluence(CGInfluenceConfig(
            damping=weight_decay, max_iter=100, tol=1e-5, curvature="gauss_newton")), "final"),
        "influence_lissa": (LiSSAInfluence(LiSSAInfluenceConfig(
            damping=weight_decay, depth=200, batch_size=256)), "final"),
        "tracin_final_checkpoint": (TracInScorer(TracInConfig(normalize="none")), "final"),
        "tracin_sgd_checkpoints5": (TracInScorer(TracInConfig(normalize="none")), "sgd"),
        "tracin_sgd_checkpoints5_retrac_train": (TracInScorer(TracInConfig(normalize="train")), "sgd"),
        "tracin_sgd_checkpoints5_retrac_both": (TracInScorer(TracInConfig(normalize="both")), "sgd"),
    } | {name: (TRAKScorer(TRAKConfig(projection=proj)), models) for name, (proj, models) in trak.items()} | {
        name: (TRAKScorer(TRAKConfig(projection=proj, damping=damping)), models)
        for name, (proj, models, damping) in trak_damped.items()
    }


TRAK_SWEEP_DAMPING = (1e-6, 1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def trak_damping_sweep(problem: Problem, models: dict[str, tuple], masks: np.ndarray, outcomes: np.ndarray) -> dict:
    """LDS of TRAK over ``TRAK_SWEEP_DAMPING`` (ridge relative to the mean eigenvalue of ``Phi^T Phi``) for the SGD
    checkpoints and the 5-model subset ensemble, Gaussian-512 and unprojected; features are computed once per
    (model set, projection) through a gradient store and reused across dampings."""
    out: dict = {}
    for which in ("sgd", "subsets5"):
        ctx = ScoringContext(adapter=problem.adapter, checkpoints=models[which], train=problem.train,
                             queries=problem.queries, batch_size=256)
        for proj in (ProjectionConfig(kind="gaussian", dim=512), ProjectionConfig(kind="identity")):
            label = f"{which}/{proj.kind}" + (f"{proj.dim}" if proj.kind != "identity" else "")
            with tempfile.TemporaryDirectory(prefix="lds-trak-") as store:
                out[label] = {
                    str(d): linear_datamodeling_score(
                        TRAKScorer(TRAKConfig(projection=proj, damping=d, store=store)).score(ctx).matrix,
                        masks, outcomes)
                    for d in TRAK_SWEEP_DAMPING
                }
            log.info("TRAK damping sweep %s: %s", label, out[label])
    return out


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


def run(setup: LDSSetup, methods: list[str] | None = None, cache: Path | None = None,
        sets: ModelSets | None = None, sweep: bool = False) -> dict:
    """Train, retrain on subsets, score with every chosen method; returns the JSON-ready results.

    ``lds`` is over all ``setup.n_queries`` queries, ``lds_first_queries`` over the first
    ``setup.n_queries_expensive`` of them. ``sweep`` adds ``trak_damping_sweep``.
    """
    sets = sets or ModelSets()
    problem = build_problem(setup)
    chosen = {n: m for n, m in scorers(setup.weight_decay).items() if not methods or n in methods}
    model = train_mlp(problem, None, setup.retrain_seeds[0])
    masks = random_subsets(problem.train.height, setup.n_subsets, seed=setup.seed)
    outcomes, retrain_seconds = cached_outcomes(problem, masks, cache)
    k = setup.n_queries_expensive
    t0 = time.perf_counter()
    needed = {m for _, m in chosen.values()} | ({"sgd", "subsets5"} if sweep else set())
    models = model_sets(problem, sets, model, needed)
    results: dict = {"setup": setup.__dict__ | {"retrain_seeds": list(setup.retrain_seeds)},
                     "model_sets": sets.__dict__ | {"train_seconds": time.perf_counter() - t0,
                                                    "sgd_learning_rates": [c.learning_rate for c in models.get("sgd", ())]},
                     "retrain_seconds": retrain_seconds, "outcomes_from_cache": retrain_seconds is None,
                     "methods": {}}
    for name, (scorer, which) in chosen.items():
        ctx = ScoringContext(adapter=problem.adapter, checkpoints=models[which], train=problem.train,
                             queries=problem.queries, batch_size=256)
        t0 = time.perf_counter()
        result: ScoreResult = scorer.score(ctx)  # type: ignore[attr-defined]
        row = {"seconds": time.perf_counter() - t0, "n_queries": len(result.query_ids), "models": which,
               "n_models": len(models[which]),
               "lds": linear_datamodeling_score(result.matrix, masks, outcomes),
               "lds_first_queries": linear_datamodeling_score(result.matrix[:, :k], masks, outcomes[:, :k])}
        results["methods"][name] = row
        log.info("%s: %s", name, row)
    if sweep:
        results["trak_damping_sweep"] = trak_damping_sweep(problem, models, masks, outcomes)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/influence/results/lds_digits.json")
    parser.add_argument("--methods", nargs="*", default=None, help="subset of method names (default: all)")
    parser.add_argument("--subsets", type=int, default=LDSSetup.n_subsets)
    parser.add_argument("--queries", type=int, default=LDSSetup.n_queries)
    parser.add_argument("--cache", default="benchmarks/influence/results/lds_digits_outcomes.npz",
                        help="npz of retrain outcomes reused when the setup matches ('' = no cache)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the TRAK damping sweep")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    setup = LDSSetup(n_subsets=args.subsets, n_queries=args.queries)
    results = run(setup, args.methods, Path(args.cache) if args.cache else None, sweep=not args.no_sweep)
    out = Path(args.out)
    if args.methods and out.exists():  # methods not rerun keep their last results when the setup is the same
        previous = json.loads(out.read_text())
        if previous.get("setup") == results["setup"]:
            results["methods"] = previous["methods"] | results["methods"]
            if "sgd" not in {r.get("models") for n, r in results["methods"].items() if n in args.methods}:
                results["model_sets"] = previous.get("model_sets", results["model_sets"])
            if args.no_sweep and "trak_damping_sweep" in previous:
                results["trak_damping_sweep"] = previous["trak_damping_sweep"]
    results["reference_peers_from_issue"] = REFERENCE_PEERS
    write_json(results, out)
    for name, row in sorted(results["methods"].items(), key=lambda kv: -kv[1]["lds"]):
        print(f"{name:40s} LDS {row['lds']:.3f}  first {setup.n_queries_expensive} {row['lds_first_queries']:.3f}"
              f"  ({row['seconds']:.1f} s, {row['n_models']} model(s): {row['models']})")


if __name__ == "__main__":
    main()
