"""TracIn LDS on the digits MLP against peer TracIn implementations, under two ground truths (issue 18, item 1).

Everything runs in one process tree on the same data, models and masks:

- **peers**: dattri 0.3.0 ``TracInAttributor`` (venv /work/peers/dattri) and captum 0.9.0 ``TracInCP`` (venv
  /work/peers/captum), each in its own process (``tracin_peer_worker.py``) on the orchestrator's state dicts and
  data written to a temporary folder. dattri runs both on our SGD checkpoints and with its own MNIST benchmark recipe
  (10 full-data models with different seeds, weights 1e-3, ``normal`` projection to 512 dims).
- **ours**: ``TracInScorer(normalize="none")`` (the library path) on the same checkpoint sets, exact and Gaussian-512,
  plus an ablation grid of exact per-example gradient dot products (``tracin_lds_ablation.per_example_gradients``)
  over checkpoint choice, learning-rate weights, ReTrac/per-checkpoint gradient-norm renormalisation (spec §2),
  loss vs margin query measurement and ensembles of training seeds; two non-TracIn references (EK-FAC on the final
  L-BFGS model, TRAK damping 1 on the SGD checkpoints) put both ground truths on one scale.
- **ground truths** (same 50 half-size masks, same 100 test queries, outcome = test loss):
  ``lbfgs`` = ``lds_digits``'s (each subset retrained to convergence by L-BFGS, init seeds 0 and 1; cached
  ``lds_digits_outcomes.npz``); ``sgd`` = each subset retrained with the SGD recipe of the TracIn trajectory,
  seeds 0-4 averaged (``sgd_ground_truth``; cached ``tracin_sgd_outcomes.npz``). ``sgd_seed0`` is one seed only.
  ``sgd_split_half`` = mean per-query Spearman between seeds {0,1} and {2,3,4} averages: the noise ceiling of the
  SGD truth.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.tracin_vs_peer_lds`` (JSON in
``benchmarks/influence/results/tracin_vs_peer_lds.json``; about 10 minutes on one thread with both caches present).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.influence.lds_digits import LDSSetup, Problem, build_problem, cached_outcomes, train_mlp
from benchmarks.influence.sgd_ground_truth import check_matches_train_loop, sgd_outcomes, sgd_run
from benchmarks.influence.tracin_lds_ablation import per_example_gradients
from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.ekfac import EKFACConfig, EKFACInfluence
from curation.attribution.evaluation import linear_datamodeling_score, random_subsets
from curation.attribution.tracin import TracInConfig, TracInScorer, unit_rows
from curation.attribution.trak import TRAKConfig, TRAKScorer
from curation.gradients.projection import ProjectionConfig
from curation.io import write_json

PEERS = {"dattri": Path("/work/peers/dattri/bin/python"), "captum": Path("/work/peers/captum/bin/python")}
WORKER = Path(__file__).with_name("tracin_peer_worker.py")
FIVE = [8, 16, 24, 32, 40]  # snapshot indices (0 = initialisation, e = end of epoch e) of lds_digits' 5 checkpoints
GT_SEEDS = (0, 1, 2, 3, 4)
TRAJECTORY_SEEDS = tuple(range(10))
DATTRI_WEIGHT = 1e-3  # dattri's benchmark weight for every model


def terms(problem: Problem, model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Per-model ``[n_train, n_query]`` dot products: loss-loss, loss-margin, ReTrac train-unit and both-unit, and
    the diagonal empirical-Fisher preconditioned product (not TracIn proper; the ablation's best)."""
    g, q, qm = per_example_gradients(problem, model)
    fisher = (g * g).mean(0) + 1e-8
    gu, qu = torch.from_numpy(unit_rows(g.numpy())), torch.from_numpy(unit_rows(q.numpy()))
    return {"loss": (g @ q.T).numpy(), "margin": (g @ qm.T).numpy(), "retrac_train": (gu @ q.T).numpy(),
            "retrac_both": (gu @ qu.T).numpy(), "diag_fisher": ((g / fisher) @ q.T).numpy()}


def ground_truths(problem: Problem, masks: np.ndarray, lbfgs_cache: Path, sgd_cache: Path) -> tuple[dict, dict]:
    lbfgs, lbfgs_s = cached_outcomes(problem, masks, lbfgs_cache)
    per_seed, sgd_s = sgd_outcomes(problem, masks, GT_SEEDS, sgd_cache)
    truths = {"lbfgs": lbfgs, "sgd": per_seed.mean(0), "sgd_seed0": per_seed[0]}
    a, b = per_seed[:2].mean(0), per_seed[2:].mean(0)
    split = float(np.nanmean([spearmanr(a[:, j], b[:, j]).statistic for j in range(a.shape[1])]))
    info = {"lbfgs_retrain_seconds": lbfgs_s, "sgd_retrain_seconds_this_run": round(sgd_s, 1),
            "sgd_seeds": list(GT_SEEDS), "sgd_split_half_spearman": round(split, 4),
            "sgd_vs_lbfgs_outcome_spearman": round(float(np.nanmean(
                [spearmanr(truths["sgd"][:, j], lbfgs[:, j]).statistic for j in range(lbfgs.shape[1])])), 4),
            "mean_query_loss": {k: round(float(v.mean()), 4) for k, v in truths.items()}}
    return truths, info


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """The two outcome caches every TracIn LDS script reads (``--lbfgs-cache``, ``--sgd-cache``)."""
    parser.add_argument("--lbfgs-cache", default="benchmarks/influence/results/lds_digits_outcomes.npz")
    parser.add_argument("--sgd-cache", default="benchmarks/influence/results/tracin_sgd_outcomes.npz")


def benchmark_inputs(args: argparse.Namespace) -> tuple[LDSSetup, Problem, np.ndarray, dict, dict]:
    """The digits LDS setup, problem, subset masks and both ground truths (with their summary) from the caches."""
    setup = LDSSetup()
    problem = build_problem(setup)
    masks = random_subsets(problem.train.height, setup.n_subsets, seed=setup.seed)
    truths, info = ground_truths(problem, masks, Path(args.lbfgs_cache), Path(args.sgd_cache))
    return setup, problem, masks, truths, info


def strip(rows: dict) -> dict:
    """``rows`` without their score matrices (for the JSON)."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "scores"} if isinstance(v, dict) else v)
            for k, v in rows.items()}


def lds_all(truths: dict, masks: np.ndarray, matrix: np.ndarray) -> dict[str, float]:
    return {k: round(linear_datamodeling_score(matrix, masks, v), 4) for k, v in truths.items()}


def run_peers(problem: Problem, masks: np.ndarray, truths: dict, sets: dict[str, list[tuple[float, torch.nn.Module]]],
              jobs: list[dict]) -> dict:
    """Write data, state dicts and jobs to a temporary folder, run each peer's worker, read the scores back."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="tracin-peers-") as folder:
        work = Path(folder)
        for key, t in {"x": problem.x, "y": problem.y, "xq": problem.xq, "yq": problem.yq}.items():
            np.save(work / f"{key}.npy", t.numpy())
        np.save(work / "lds_masks.npy", masks)
        for k, v in truths.items():
            np.save(work / f"lds_outcomes_{k}.npy", v)
        sizes = [problem.x.shape[1], *problem.adapter.config.hidden, int(problem.y.max()) + 1]
        (work / "arch.json").write_text(json.dumps({"sizes": sizes}))
        written = set()
        for job in jobs:
            for i, (_, model) in enumerate(sets[job["set"]]):
                name = f"{job['set']}-{i}.pt"
                if name not in written:
                    torch.save(model.state_dict(), work / name)
                    written.add(name)
            job["checkpoints"] = [f"{job['set']}-{i}.pt" for i in range(len(sets[job["set"]]))]
        (work / "jobs.json").write_text(json.dumps(jobs))
        for library, python in PEERS.items():
            if not python.exists():
                out[library] = {"error": f"{python} not found"}
                continue
            done = subprocess.run([str(python), str(WORKER), "--workdir", folder, "--library", library],
                                  capture_output=True, text=True, check=False,
                                  env=os.environ | {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})
            if done.returncode != 0:
                out[library] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
                continue
            timing = json.loads((work / f"timing_{library}.json").read_text())
            for job in jobs:
                if job["library"] == library:
                    scores = np.load(work / f"scores_{job['name']}.npy")
                    out[job["name"]] = {"library": library, "set": job["set"], "projection": job["projection"],
                                        "weights": job["weights_label"], "lds": lds_all(truths, masks, scores),
                                        **timing[job["name"]], "scores": scores}
            out[f"{library}_torch"] = timing["torch"]
    return out


def ours(problem: Problem, sets: dict, name: str, projection: ProjectionConfig, normalize: str = "none",
         modules: tuple[str, ...] | None = None) -> np.ndarray:
    """``TracInScorer`` on model set ``name`` (learning-rate weighted), optionally restricted to ``modules``."""
    ckpts = tuple(CheckpointModel(model=m, learning_rate=lr) for lr, m in sets[name])
    ctx = ScoringContext(adapter=problem.adapter, checkpoints=ckpts, train=problem.train, queries=problem.queries,
                         batch_size=256, modules=modules)
    return TracInScorer(TracInConfig(normalize=normalize, projection=projection)).score(ctx).matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/influence/results/tracin_vs_peer_lds.json")
    add_cache_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    setup, problem, masks, truths, truth_info = benchmark_inputs(args)
    truth_info["sgd_run_matches_train_loop_max_abs_diff"] = check_matches_train_loop(problem, masks[0], 0)

    trajectories = {s: sgd_run(problem, None, s, snapshots=True)[1] for s in TRAJECTORY_SEEDS}
    lbfgs_models = [train_mlp(problem, None, s) for s in TRAJECTORY_SEEDS]
    sets = {"sgd5": [trajectories[0][i] for i in FIVE],
            "dattri_recipe_lbfgs10": [(DATTRI_WEIGHT, m) for m in lbfgs_models],
            "dattri_recipe_sgd10": [(DATTRI_WEIGHT, trajectories[s][-1][1]) for s in TRAJECTORY_SEEDS]}

    gauss512 = ProjectionConfig(kind="gaussian", dim=512)
    identity = ProjectionConfig(kind="identity")
    jobs = [{"name": "dattri_sgd5_exact", "library": "dattri", "set": "sgd5", "projection": "identity"},
            {"name": "dattri_sgd5_normal512", "library": "dattri", "set": "sgd5", "projection": "normal:512"},
            {"name": "dattri_recipe_lbfgs10_normal512", "library": "dattri", "set": "dattri_recipe_lbfgs10",
             "projection": "normal:512"},
            {"name": "dattri_recipe_sgd10_normal512", "library": "dattri", "set": "dattri_recipe_sgd10",
             "projection": "normal:512"},
            {"name": "dattri_sgd5_exact_cosin", "library": "dattri", "set": "sgd5", "projection": "identity",
             "normalized": True},
            {"name": "captum_sgd5_exact", "library": "captum", "set": "sgd5", "projection": "identity"},
            {"name": "captum_fast_sgd5_last_layer", "library": "captum", "set": "sgd5", "projection": "identity",
             "variant": "TracInCPFast"}]
    for job in jobs:
        job["weights"] = [lr for lr, _ in sets[job["set"]]]
        job["weights_label"] = "lr" if job["set"] == "sgd5" else f"{DATTRI_WEIGHT} each"
    peers = run_peers(problem, masks, truths, sets, jobs)

    library: dict = {}
    last_layer = (problem.adapter.tracked_modules(sets["sgd5"][0][1])[-1],)
    for name, which, proj, normalize, modules in [
            ("ours_sgd5_exact", "sgd5", identity, "none", None),
            ("ours_sgd5_gaussian512", "sgd5", gauss512, "none", None),
            ("ours_sgd5_exact_retrac_both", "sgd5", identity, "both", None),
            ("ours_sgd5_last_layer", "sgd5", identity, "none", last_layer),
            ("ours_recipe_lbfgs10_exact", "dattri_recipe_lbfgs10", identity, "none", None),
            ("ours_recipe_lbfgs10_gaussian512", "dattri_recipe_lbfgs10", gauss512, "none", None),
            ("ours_recipe_sgd10_gaussian512", "dattri_recipe_sgd10", gauss512, "none", None)]:
        start = time.perf_counter()
        matrix = ours(problem, sets, which, proj, normalize, modules)
        library[name] = {"set": which, "projection": proj.kind, "normalize": normalize, "modules": modules,
                         "lds": lds_all(truths, masks, matrix), "seconds": round(time.perf_counter() - start, 1),
                         "scores": matrix}
    agreement = {}
    for a, b in [("ours_sgd5_exact", "dattri_sgd5_exact"), ("ours_sgd5_exact", "captum_sgd5_exact"),
                 ("ours_recipe_lbfgs10_exact", "dattri_recipe_lbfgs10_normal512"),
                 ("ours_sgd5_exact", "dattri_sgd5_normal512"),
                 ("ours_sgd5_exact_retrac_both", "dattri_sgd5_exact_cosin"),
                 ("ours_sgd5_last_layer", "captum_fast_sgd5_last_layer")]:
        x = (library | peers).get(a, {}).get("scores")
        y = (library | peers).get(b, {}).get("scores")
        if x is not None and y is not None:
            agreement[f"{a} vs {b}"] = {"pearson": round(float(np.corrcoef(x.ravel(), y.ravel())[0, 1]), 6),
                                        "max_abs_diff_rel": float(np.abs(x - y).max() / np.abs(x).max())}

    grid = ablation(problem, truths, masks, trajectories, lbfgs_models)
    refs = references(problem, truths, masks, sets, lbfgs_models[0])
    results = {"setup": setup.__dict__ | {"retrain_seeds": list(setup.retrain_seeds)}, "ground_truths": truth_info,
               "peers": strip(peers), "ours_library": strip(library), "agreement": agreement,
               "ablation": grid, "references": refs, "target": 0.62,
               "seconds": round(time.perf_counter() - t0, 1)}
    write_json(results, Path(args.out))
    for group in ("peers", "ours_library", "ablation", "references"):
        for name, row in results[group].items():
            if isinstance(row, dict) and "lds" in row:
                print(f"{group:13s} {name:48s} " + "  ".join(f"{k} {v:.3f}" for k, v in row["lds"].items()))


def ablation(problem: Problem, truths: dict, masks: np.ndarray, trajectories: dict, lbfgs_models: list) -> dict:
    """Weighted sums of exact per-model dot products (see ``terms``) over checkpoint choice, weights and ensembles."""
    cache: dict[tuple, dict] = {}

    def term(seed: int | str, i: int) -> dict[str, np.ndarray]:
        if (seed, i) not in cache:
            model = lbfgs_models[i] if seed == "lbfgs" else trajectories[seed][i][1]
            cache[(seed, i)] = terms(problem, model)
        return cache[(seed, i)]

    def tracin(idx: Iterable[int], key: str = "loss", lr_weighted: bool = True, seeds: Iterable = (0,)) -> dict:
        matrix = sum((trajectories[s][i][0] if lr_weighted else 1.0) * term(s, i)[key] for s in seeds for i in idx)
        return {"lds": lds_all(truths, masks, matrix)}

    every = range(1, 41)
    rows = {
        "sgd 5 ckpts, lr-weighted (library default recipe)": tracin(FIVE),
        "sgd 5 ckpts, equal weights": tracin(FIVE, lr_weighted=False),
        "sgd 5 ckpts, margin query gradient": tracin(FIVE, key="margin"),
        "sgd 5 ckpts, ReTrac normalize=train": tracin(FIVE, key="retrac_train"),
        "sgd 5 ckpts, ReTrac normalize=both": tracin(FIVE, key="retrac_both"),
        "sgd 40 ckpts (every epoch), lr-weighted": tracin(every),
        "sgd 40 ckpts, equal weights": tracin(every, lr_weighted=False),
        "sgd 40 ckpts, ReTrac normalize=train": tracin(every, key="retrac_train"),
        "sgd 40 ckpts, ReTrac normalize=both": tracin(every, key="retrac_both"),
        "sgd 40 ckpts, margin query gradient": tracin(every, key="margin"),
        "sgd init + 40 ckpts, lr-weighted": tracin(range(41)),
        "sgd initialisation only": tracin([0]),
        "sgd epoch 1 only": tracin([1]),
        "sgd first 10 ckpts (epochs 1-10)": tracin(range(1, 11)),
        "sgd last 10 ckpts (epochs 31-40)": tracin(range(31, 41)),
        "sgd last ckpt only (Grad-Dot)": tracin([40]),
        "sgd seeds 0-4 x 5 ckpts (the sgd truth's seeds)": tracin(FIVE, seeds=GT_SEEDS),
        "sgd seeds 0-9 x 5 ckpts": tracin(FIVE, seeds=TRAJECTORY_SEEDS),
        "sgd seeds 0-9 x 5 ckpts, ReTrac normalize=train": tracin(FIVE, key="retrac_train", seeds=TRAJECTORY_SEEDS),
        "sgd seeds 0-9 x last ckpt, equal weights": tracin([40], lr_weighted=False, seeds=TRAJECTORY_SEEDS),
        "sgd 5 ckpts, diagonal-Fisher preconditioned (not TracIn proper)": tracin(FIVE, key="diag_fisher"),
    }
    rows["L-BFGS final models seeds 0-9, equal weights"] = {"lds": lds_all(truths, masks, sum(
        term("lbfgs", i)["loss"] for i in range(len(lbfgs_models))))}
    rows["L-BFGS final model seed 0"] = {"lds": lds_all(truths, masks, term("lbfgs", 0)["loss"])}
    rows["single checkpoints along the seed-0 trajectory"] = {
        "lds_by_epoch": {str(i): lds_all(truths, masks, term(0, i)["loss"]) for i in range(0, 41, 4)}}
    return rows


def references(problem: Problem, truths: dict, masks: np.ndarray, sets: dict, final: torch.nn.Module) -> dict:
    """Non-TracIn methods on both ground truths: EK-FAC (final L-BFGS model) and TRAK damping 1 (SGD 5 ckpts)."""
    out = {}
    for name, scorer, ckpts in [
        ("ekfac (final L-BFGS model, heuristic damping)", EKFACInfluence(EKFACConfig(damping=None, self_influence=False)),
         (CheckpointModel(model=final),)),
        ("trak damping 1, Gaussian 512 (SGD 5 ckpts)", TRAKScorer(TRAKConfig(
            projection=ProjectionConfig(kind="gaussian", dim=512), damping=1.0)),
         tuple(CheckpointModel(model=m, learning_rate=lr) for lr, m in sets["sgd5"]))]:
        ctx = ScoringContext(adapter=problem.adapter, checkpoints=ckpts, train=problem.train,
                             queries=problem.queries, batch_size=256)
        out[name] = {"lds": lds_all(truths, masks, scorer.score(ctx).matrix)}
    return out


if __name__ == "__main__":
    sys.exit(main())
