"""Our TRAK vs traker 0.3.2 and dattri 0.3.0 on the same models, data and checkpoints: time, memory, agreement, LDS.

Sizes:
- ``digits``: the LDS setup of ``lds_digits`` (64-128-10 MLP, 1,437 train, its 100 test queries); the ensemble is the
  5 models that ``lds_digits`` trains on random half subsets for ``trak_subsets5`` (converted to float32), so every
  side's LDS is computed against the cached ground truth of ``lds_digits_outcomes.npz``.
- ``digits_noisy``: digits with 10% flipped labels, the MLP recipe of ``label_errors_a1`` (5 SGD checkpoints as the
  ensemble), queries = the training rows: the diagonal is each side's self-influence, scored by average precision
  (AP) of the flipped rows.
- ``newsgroups``: 20 Newsgroups train (11,314 docs as 2,048 TF-IDF features), 2048-512-20 MLP (1.06 M parameters),
  one model trained as in ``ekfac_vs_kronfluence``, 32 test queries (needs ``CURATION_SHARED_DATA``); only ours,
  traker and dattri run (no unprojected reference at this size). Our dense projection matrix (2.2 GB) is kept in
  memory (``cache_mb``), traker's and dattri's CPU projectors regenerate theirs block by block for every batch.

Matched settings: model output = margin ``logit_y - logsumexp_{j != y} logit_j`` for train and query gradients,
out-to-loss weight ``1 - p_y``, every parameter tracked, Gaussian projection to ``--proj-dim`` dimensions (512, dattri's
default), zero ridge (traker's and dattri's default ``lambda_reg = 0``; ours ``damping = 0``), float32, one torch
thread, each side in its own fresh process (ours in the project venv, the peers in /work/venvs/trak_peers, created by
this script if missing). The time covers featurising, the kernel inverse and scoring; memory is the worker's peak RSS.
Our projection matrices differ from the peers' (dattri copies traker's ``BasicProjector``, so those two share
theirs), so scores cannot agree exactly: ``ours_seed1`` (ours with another projection seed) measures how far two
projections of the *same* method disagree; ``ours_peer_matrix`` (our gradients and TRAK algebra, sketched with the
peers' matrices, rebuilt from traker's seeding rule) takes the projection out of the comparison; and on digits
``ours_identity`` (no projection, exact TRAK with ridge 0) is the common reference every side is compared with. Times
of ``ours_peer_matrix``/``ours_identity`` are not comparable (full gradients, dense matrices). One remaining
difference of method: traker divides each
model's ``(Phi^T Phi)^-1`` by its mean absolute entry before averaging over models (for float16), which reweights
the ensemble members; ours and dattri average them unweighted.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.influence.trak_vs_peers --out benchmarks/influence/results/trak_vs_peers.json``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file, save_file
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import average_precision_score

from benchmarks.influence.ekfac_vs_kronfluence import (
    ArrayAdapter,
    fit_mlp,
    newsgroups_data,
    proc_status_mb,
    shared_data,
)
from benchmarks.influence.lds_digits import LDSSetup, ModelSets, build_problem, subset_ensemble
from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.evaluation import linear_datamodeling_score, random_subsets
from curation.attribution.trak import TRAKConfig, TRAKScorer, trak_scores
from curation.gradients.featurize import FeaturizeConfig, checkpoint_features
from curation.gradients.projection import ProjectionConfig
from curation.io import write_json
from curation.models.classifiers import ClassifierConfig

PEER_VENV = Path("/work/venvs/trak_peers")
WORKER = Path(__file__).with_name("trak_peers_worker.py")
ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ROOT / "benchmarks" / "influence" / "results" / "lds_digits_outcomes.npz"
OUR_VARIANTS = {"ours": (0, False), "ours_seed1": (1, False), "ours_identity": (0, True)}
PEER_MATRIX = "ours_peer_matrix"


def ensure_peer_venv() -> Path:
    """Create the peers' venv (torch 2.13.0 first, then traker 0.3.2 and dattri 0.3.0) if it is missing."""
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import trak, dattri"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "traker==0.3.2", "dattri==0.3.0", "torch==2.13.0", "numpy", "safetensors", "scipy"],
                   check=True)
    return python


def traker_gaussian_matrix(n_params: int, dim: int, seed: int, model_id: int, block: int = 100) -> np.ndarray:
    """The ``[n_params, dim]`` N(0, 1) matrix that traker's CPU ``BasicProjector`` (and dattri's copy of it) uses for
    ``model_id``: column blocks of ``block`` generated from seed ``seed + 1000 * block_index + 100000 * model_id``."""
    width = min(dim, block)
    cols = []
    for i in range(-(-dim // width)):
        gen = torch.Generator().manual_seed(seed + 1000 * i + 100000 * model_id)
        cols.append(torch.empty(n_params, width).normal_(generator=gen)[:, : min(width, dim - i * width)])
    return torch.cat(cols, dim=1).numpy()


def peer_matrix_scores(ctx: ScoringContext, dim: int, seed: int, ridge: float) -> np.ndarray:
    """Our margin gradients and TRAK algebra (``trak_scores``), sketched with the peers' projection matrices: what
    ours computes when the projection is taken out of the comparison."""
    cfg = FeaturizeConfig(target="margin", projection=ProjectionConfig(kind="identity"), batch_size=ctx.batch_size)
    models = [c.model for c in ctx.checkpoints]
    train = checkpoint_features(ctx.adapter, models, ctx.train, cfg, show_progress=False)
    query = checkpoint_features(ctx.adapter, models, ctx.queries, cfg, show_progress=False)
    mats = [traker_gaussian_matrix(g.shape[1], dim, seed, m) for m, (g, _) in enumerate(train)]
    matrix, _ = trak_scores([g @ p for (g, _), p in zip(train, mats, strict=True)],
                            [g @ p for (g, _), p in zip(query, mats, strict=True)],
                            [1.0 / (1.0 + np.exp(v.astype(np.float64))) for _, v in train], damping=ridge)
    return matrix


def run_ours(work: Path, variant: str, batch_size: int) -> None:
    """Worker (fresh process): our TRAK scorer on the prepared work folder (``ours_peer_matrix``: see
    ``peer_matrix_scores``)."""
    torch.set_num_threads(1)
    spec = json.loads((work / "spec.json").read_text())
    sizes = spec["sizes"]
    config = ClassifierConfig(n_features=sizes[0], n_classes=sizes[-1], hidden=tuple(sizes[1:-1]))
    x, y = torch.from_numpy(np.load(work / "train_x.npy")), torch.from_numpy(np.load(work / "train_y.npy"))
    xq, yq = torch.from_numpy(np.load(work / "query_x.npy")), torch.from_numpy(np.load(work / "query_y.npy"))
    adapter = ArrayAdapter(config, torch.cat([x, xq]), torch.cat([y, yq]))
    models = []
    for m in range(spec["n_models"]):
        model = adapter.build_model()
        model.load_state_dict(load_file(str(work / f"model_{m}.safetensors")))
        models.append(CheckpointModel(model=model.eval()))
    n, q = len(y), len(yq)
    train = pl.DataFrame({"example_id": np.arange(n), "row": np.arange(n), "label": y.numpy()})
    queries = pl.DataFrame({"example_id": np.arange(q), "row": np.arange(n, n + q), "label": yq.numpy()})
    rss_before = proc_status_mb("VmRSS")
    start = time.perf_counter()
    ctx = ScoringContext(adapter=adapter, checkpoints=tuple(models), train=train, queries=queries,
                         batch_size=batch_size)
    if variant == PEER_MATRIX:
        matrix = peer_matrix_scores(ctx, spec["proj_dim"], spec["seed"], spec["ridge"])
    else:
        seed, identity = OUR_VARIANTS[variant]
        projection = ProjectionConfig(kind="identity") if identity else ProjectionConfig(
            kind="gaussian", dim=spec["proj_dim"], seed=spec["seed"] + seed, cache_mb=4096)
        matrix = TRAKScorer(TRAKConfig(output="margin", projection=projection, damping=spec["ridge"])).score(ctx).matrix
    seconds = time.perf_counter() - start
    np.save(work / f"scores_{variant}.npy", matrix)
    (work / f"timing_{variant}.json").write_text(json.dumps({
        "seconds": seconds, "peak_rss_mb": proc_status_mb("VmHWM"), "rss_before_mb": rss_before,
        "torch": torch.__version__,
    }))


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Pearson over all train x query entries and the mean over queries of the per-query Spearman."""
    per_query = [spearmanr(a[:, j], b[:, j]).statistic for j in range(a.shape[1])]
    return {"pearson_all_scores": float(pearsonr(a.ravel(), b.ravel()).statistic),
            "spearman_per_query_mean": float(np.nanmean(per_query))}


def digits_ground_truth(n_train: int) -> tuple[np.ndarray, np.ndarray] | None:
    """LDS masks and outcomes of ``lds_digits`` (read from its cache; ``None`` when the cache does not match)."""
    setup = LDSSetup()
    masks = random_subsets(n_train, setup.n_subsets, seed=setup.seed)
    if not OUTCOMES.exists():
        return None
    with np.load(OUTCOMES) as saved:
        if not np.array_equal(saved["masks"], masks):
            return None
        return masks, saved["outcomes"]


def prepare_digits(work: Path, n_models: int) -> dict:
    problem = build_problem(LDSSetup())
    ensemble = subset_ensemble(problem, ModelSets(ensemble_size=n_models))
    for m, ck in enumerate(ensemble):
        save_file({k: v.detach().float().contiguous() for k, v in ck.model.state_dict().items()},
                  str(work / f"model_{m}.safetensors"))
    arrays = {"train_x": problem.x.float().numpy(), "train_y": problem.y.numpy(),
              "query_x": problem.xq.float().numpy(), "query_y": problem.yq.numpy()}
    for key, arr in arrays.items():
        np.save(work / f"{key}.npy", arr)
    return {"sizes": [64, 128, 10], "n_models": n_models, "models": "lds_digits subset ensemble (trak_subsets5)"}


def prepare_newsgroups(work: Path) -> dict:
    x, y, xq, yq, sizes = newsgroups_data()
    save_file(fit_mlp(x, y, sizes, epochs=3), str(work / "model_0.safetensors"))
    for key, arr in {"train_x": x, "train_y": y, "query_x": xq, "query_y": yq}.items():
        np.save(work / f"{key}.npy", arr)
    return {"sizes": sizes, "n_models": 1, "models": "one MLP, AdamW 3 epochs (as ekfac_vs_kronfluence)"}


def prepare_digits_noisy(work: Path) -> dict:
    """Digits with 10% flipped labels and the label-error benchmark's MLP recipe (``label_errors_a1``: SGD with
    momentum, 30 epochs, 5 checkpoints = the ensemble); the queries are the training rows themselves, so the diagonal
    of each side's score matrix is its self-influence."""
    from curation.data.digits import DigitsConfig, build_digits
    from curation.models.classifiers import MLPClassifierAdapter
    from curation.training import TrainConfig, train

    frame, _, noisy = build_digits(DigitsConfig(noise_fraction=0.1, seed=0))
    recipe = TrainConfig(epochs=30.0, batch_size=64, optimizer="sgd", learning_rate=0.1, momentum=0.9,
                         weight_decay=1e-4, schedule="constant", n_checkpoints=5, eval_every=10**6, seed=0)
    adapter = MLPClassifierAdapter(ClassifierConfig())
    with tempfile.TemporaryDirectory() as folder:
        result = train(adapter, frame, recipe, checkpoint_dir=folder, show_progress=False)
        for m, ckpt in enumerate(result.checkpoints):
            state = load_file(str(Path(folder) / ckpt["file"]))
            save_file({k: v.float().contiguous() for k, v in state.items()}, str(work / f"model_{m}.safetensors"))
    batch = adapter.collate(frame)
    x, y = batch["x"].float().numpy(), batch["y"].numpy()
    for key, arr in {"train_x": x, "train_y": y, "query_x": x, "query_y": y}.items():
        np.save(work / f"{key}.npy", arr)
    np.save(work / "flipped.npy", frame["example_id"].is_in(noisy["example_id"].to_list()).to_numpy())
    return {"sizes": [64, 128, 10], "n_models": len(result.checkpoints),
            "models": "5 SGD checkpoints of label_errors_a1's digits MLP (10% flipped labels)"}


def bench_size(name: str, peer_python: Path, *, proj_dim: int, batch_size: int, timeout: float | None,
               only: list[str] | None = None) -> dict:
    sides = ["ours", "ours_seed1", "traker", "dattri", PEER_MATRIX] + (["ours_identity"] if name == "digits" else [])
    if name == "newsgroups":  # full gradients (11,314 x 1.06 M floats = 45 GB) do not fit: no unprojected or
        sides = ["ours", "ours_seed1", "traker", "dattri"]  # peer-matrix (materialises them) side
    sides = [s for s in sides if not only or s in only]
    prepare = {"digits": lambda w: prepare_digits(w, 5), "digits_noisy": prepare_digits_noisy,
               "newsgroups": prepare_newsgroups}[name]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    with tempfile.TemporaryDirectory(prefix="trak-vs-peers-") as tmp:
        work = Path(tmp)
        spec = prepare(work)
        spec |= {"proj_dim": proj_dim, "seed": 0, "ridge": 0.0, "batch_size": batch_size}
        (work / "spec.json").write_text(json.dumps(spec))
        out: dict = {"spec": spec, "n_train": len(np.load(work / "train_y.npy")),
                     "n_query": len(np.load(work / "query_y.npy")),
                     "n_params": int(sum(v.numel() for v in load_file(str(work / "model_0.safetensors")).values())),
                     "timing": {}}
        for side in sides:
            if side.startswith("ours"):
                cmd = [sys.executable, "-m", "benchmarks.influence.trak_vs_peers", "worker", "--workdir", str(work),
                       "--variant", side, "--batch-size", str(batch_size)]
            else:
                cmd = [str(peer_python), str(WORKER), "--workdir", str(work), "--library", side,
                       "--batch-size", str(batch_size)]
            print(f"[{name}] running {side}", flush=True)
            try:
                subprocess.run(cmd, check=True, env=env, cwd=ROOT, timeout=timeout)
            except subprocess.TimeoutExpired:
                out["timing"][side] = {"timed_out_after_s": timeout}
                continue
            out["timing"][side] = json.loads((work / f"timing_{side}.json").read_text())
        scores = {s: np.load(work / f"scores_{s}.npy") for s in sides if (work / f"scores_{s}.npy").exists()}
        if name == "digits_noisy":
            flipped = np.load(work / "flipped.npy")
            out["flipped"] = int(flipped.sum())
            out["label_noise_ap_self_influence"] = {
                s: float(average_precision_score(flipped, np.diag(m))) for s, m in scores.items()}
    out["agreement"] = {f"{a}~{b}": agreement(scores[a], scores[b])
                        for a, b in [("ours", "ours_seed1"), ("ours", "traker"), ("ours", "dattri"),
                                     ("traker", "dattri"), (PEER_MATRIX, "traker"), (PEER_MATRIX, "dattri"),
                                     ("ours", "ours_identity"), ("ours_seed1", "ours_identity"),
                                     ("traker", "ours_identity"), ("dattri", "ours_identity")]
                        if a in scores and b in scores}
    if "ours" in out["timing"] and "seconds" in out["timing"]["ours"]:
        out["time_ratio_ours_over"] = {s: out["timing"]["ours"]["seconds"] / t["seconds"]
                                       for s, t in out["timing"].items() if s in ("traker", "dattri") and "seconds" in t}
    truth = digits_ground_truth(out["n_train"]) if name == "digits" else None
    if truth is not None:
        out["lds"] = {s: linear_datamodeling_score(m, *truth) for s, m in scores.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker")
    worker.add_argument("--workdir", required=True)
    worker.add_argument("--variant", choices=[*sorted(OUR_VARIANTS), PEER_MATRIX], required=True)
    worker.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/influence/results/trak_vs_peers.json")
    parser.add_argument("--sizes", nargs="*", default=["digits", "digits_noisy"],
                        help="digits, digits_noisy (label-noise AP) and/or newsgroups")
    parser.add_argument("--proj-dim", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which a side is stopped")
    parser.add_argument("--sides", nargs="*", default=None, help="run only these sides (default: all for the size)")
    args = parser.parse_args()
    if args.command == "worker":
        run_ours(Path(args.workdir), args.variant, args.batch_size)
        return
    peer = ensure_peer_venv()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}  # sizes not rerun keep their last results
    for size in args.sizes:
        if size == "newsgroups" and not (shared_data() / "20newsgroups").exists():
            print(f"skipping {size}: {shared_data()} has no 20newsgroups")
            continue
        results[size] = bench_size(size, peer, proj_dim=args.proj_dim, batch_size=args.batch_size,
                                   timeout=args.timeout, only=args.sides)
        results[size]["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        print(json.dumps({size: results[size]}, indent=1))
        write_json(results, out)


if __name__ == "__main__":
    main()
