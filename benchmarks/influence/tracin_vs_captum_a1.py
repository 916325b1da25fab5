"""TracIn self-influence throughput: our projected per-example gradient features vs captum ``TracInCP``, side by
side in one run, on the same model, checkpoints and data.

Setup (work dominates fixed overheads): 20 Newsgroups train+test posts -> TF-IDF (2,000 terms) -> an MLP
2000-512-20 (1.03 M parameters) trained by SGD, 2 checkpoints; N training examples (default 10,000). Ours:
``TracInScorer(projection=sjlt k)`` (projected features) and ``TracInScorer(projection=identity)`` (exact squared
norms by the ghost-norm path, ``curation.gradients.ghost``); captum: ``TracInCP(sample_wise_grads_per_batch=True)`` (exact gradients)
in its own venv (``PEER_PYTHON``, default /work/venvs/influence_a1/bin/python). Reported: wall seconds,
examples x checkpoints per second, the throughput ratio, and Pearson/Spearman between the two self-influence
vectors. Writes ``benchmarks/influence/results/tracin_vs_captum_a1.json`` (or the path in ``OUT_JSON``).
"""

from __future__ import annotations

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
from scipy.stats import pearsonr, spearmanr

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.gradients import ProjectionConfig
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("OUT_JSON", ROOT / "benchmarks" / "influence" / "results" / "tracin_vs_captum_a1.json"))
N = int(os.environ.get("N_EXAMPLES", "10000"))
DIM = int(os.environ.get("PROJ_DIM", "2048"))
THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
PEER = os.environ.get("PEER_PYTHON", "/work/venvs/influence_a1/bin/python")
ARCH = {"n_features": 2000, "hidden": [512], "n_classes": 20, "batch_size": 128}


def data(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` TF-IDF rows and labels of 20 Newsgroups train+test."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    shared = Path(os.environ.get("CURATION_SHARED_DATA", ROOT.parent / "shared" / "data")) / "20newsgroups"
    frame = pl.concat([pl.read_parquet(shared / f"{s}.parquet", columns=["text", "label"]) for s in ("train", "test")])
    x = TfidfVectorizer(sublinear_tf=True, max_features=ARCH["n_features"], stop_words="english") \
        .fit_transform(frame["text"].to_list()).toarray().astype(np.float32)
    return x[:n], frame["label"].to_numpy().astype(np.int64)[:n]


def train_checkpoints(adapter: MLPClassifierAdapter, x: np.ndarray, y: np.ndarray, work: Path) -> list[float]:
    torch.manual_seed(0)
    model = adapter.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.default_rng(0)
    lrs = {}
    for epoch in range(2):
        perm = rng.permutation(len(y))
        for s in range(0, len(y), 128):
            b = perm[s : s + 128]
            loss = torch.nn.functional.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.save(model.state_dict(), work / f"ckpt-{epoch}.pt")
        lrs[f"ckpt-{epoch}.pt"] = 0.5
    (work / "lrs.json").write_text(json.dumps(lrs))
    return list(lrs.values())


def main() -> None:
    torch.set_num_threads(THREADS)
    x, y = data()
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=ARCH["n_features"], n_classes=20,
                                                    hidden=tuple(ARCH["hidden"])))
    with tempfile.TemporaryDirectory(prefix="a1-captum-") as tmp:
        work = Path(tmp)
        np.save(work / "x.npy", x)
        np.save(work / "y.npy", y)
        (work / "arch.json").write_text(json.dumps(ARCH))
        lrs = train_checkpoints(adapter, x, y, work)
        checkpoints = []
        for i, lr in enumerate(lrs):
            model = adapter.build_model()
            model.load_state_dict(torch.load(work / f"ckpt-{i}.pt", weights_only=True))
            checkpoints.append(CheckpointModel(model=model.eval(), learning_rate=lr))
        frame = pl.DataFrame({"example_id": np.arange(len(y)), "features": x, "label": y})
        ctx = ScoringContext(adapter=adapter, checkpoints=tuple(checkpoints), train=frame, queries=frame.head(1),
                             batch_size=ARCH["batch_size"])
        scorer = TracInScorer(TracInConfig(projection=ProjectionConfig(kind="sjlt", dim=DIM)))
        start = time.perf_counter()
        ours = scorer.self_influence(ctx)
        ours_s = time.perf_counter() - start
        exact = TracInScorer(TracInConfig(projection=ProjectionConfig(kind="identity")))
        start = time.perf_counter()
        ghost = exact.self_influence(ctx)  # exact squared norms via ghost norms (all tracked modules are Linear)
        ghost_s = time.perf_counter() - start
        peer = {"error": f"{PEER} not found"}
        if Path(PEER).exists():
            done = subprocess.run([PEER, str(Path(__file__).with_name("captum_worker_a1.py")), tmp, str(THREADS)],
                                  check=False, capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
            if done.returncode == 0:
                peer = json.loads((work / "captum.json").read_text())
                theirs = np.load(work / "captum_self.npy")
                peer["pearson_with_ours"] = float(pearsonr(ours, theirs)[0])
                peer["spearman_with_ours"] = float(spearmanr(ours, theirs)[0])
                peer["pearson_with_ours_exact_ghost"] = float(pearsonr(ghost, theirs)[0])
                peer["max_rel_diff_exact_ghost"] = float(np.max(np.abs(ghost - theirs) / np.abs(theirs).max()))
            else:
                peer = {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    work_units = len(y) * len(lrs)
    result = {
        "examples": len(y), "checkpoints": len(lrs),
        "parameters": sum(p.numel() for p in checkpoints[0].model.parameters()),
        "threads": THREADS, "projection": f"sjlt k={DIM}",
        "ours_seconds": ours_s, "ours_examples_ckpts_per_s": work_units / ours_s,
        "ours_exact_ghost_seconds": ghost_s, "ours_exact_ghost_examples_ckpts_per_s": work_units / ghost_s,
        "captum": peer,
    }
    if "seconds" in peer:
        result["captum_examples_ckpts_per_s"] = work_units / peer["seconds"]
        result["throughput_ratio_ours_over_captum"] = peer["seconds"] / ours_s
        result["throughput_ratio_exact_ghost_over_captum"] = peer["seconds"] / ghost_s
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
