"""Per-example gradient features: our Kronecker-factored (LoGra-style) projection vs captum ``TracInCP``, side by
side in one run, on the same model, checkpoints and data as ``tracin_vs_captum_a1.py``.

Setup: 20 Newsgroups posts -> TF-IDF (2,000 terms) -> MLP 2000-512-20 (1.03 M parameters), 2 SGD checkpoints;
N training examples (default 10,000) and Q query posts (default 32, the rows after the training ones).
Ours: ``TracInScorer(projection=kronecker, dim=D)`` for each D in ``PROJ_DIMS`` (``curation.gradients.kronecker``:
features from layer activations and output gradients, through the resumable ``GradientStore``; no per-example
gradient is built).
Timed: (a) self-influence = train features for every checkpoint + squared norms (the feature path), (b) ``score``
= train and query features + the ``[N, Q]`` TracIn matrix. captum: ``TracInCP(sample_wise_grads_per_batch=True)``
``self_influence`` and ``influence`` on the queries (exact gradients), in its own venv (``PEER_PYTHON``).
Agreement: Pearson/Spearman of our self-influence against the exact one (ghost norms, equal to captum's) and of our
matrix against captum's exact matrix. Ours run ``REPEATS`` times, once before and the rest after captum's single
run so that the load of the shared cores is bracketed; ratios use our median.
Writes ``benchmarks/influence/results/gradient_features_vs_captum.json``.

    OMP_NUM_THREADS=1 python benchmarks/influence/gradient_features_vs_captum.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch
from scipy.stats import pearsonr, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracin_vs_captum_a1 import ARCH, PEER, ROOT, data, train_checkpoints

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.gradients import ProjectionConfig
from curation.gradients.kronecker import KroneckerProjector
from curation.io import write_json
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter

OUT = ROOT / "benchmarks" / "influence" / "results" / "gradient_features_vs_captum.json"
N = int(os.environ.get("N_EXAMPLES", "10000"))
Q = int(os.environ.get("N_QUERIES", "32"))
DIMS = [int(d) for d in os.environ.get("PROJ_DIMS", "4096,16384").split(",")]
REPEATS = int(os.environ.get("REPEATS", "3"))
THREADS = int(os.environ.get("OMP_NUM_THREADS", "1"))


def timed(fn, repeats: int) -> tuple[list[float], object]:
    """Wall seconds of each of ``repeats`` calls and the last result."""
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, out


def agreement(ours: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    return {"pearson": float(pearsonr(ours.ravel(), exact.ravel())[0]),
            "spearman": float(spearmanr(ours.ravel(), exact.ravel())[0])}


def run_captum(work: Path) -> dict:
    if not Path(PEER).exists():
        return {"error": f"{PEER} not found"}
    done = subprocess.run([PEER, str(Path(__file__).with_name("captum_worker_a1.py")), str(work), str(THREADS)],
                          check=False, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads((work / "captum.json").read_text())


def ours_round(ctx: ScoringContext, timings: dict[int, dict[str, list[float]]]) -> dict[int, tuple]:
    """One timed self-influence and one timed ``score`` per projection dim; returns the latest outputs."""
    outputs = {}
    for dim in DIMS:
        scorer = TracInScorer(TracInConfig(normalize="none", projection=ProjectionConfig(kind="kronecker", dim=dim)))
        self_s, self_inf = timed(lambda s=scorer: s.self_influence(ctx), 1)
        score_s, scores = timed(lambda s=scorer: s.score(ctx), 1)
        timings[dim]["self_influence"] += self_s
        timings[dim]["score"] += score_s
        outputs[dim] = (self_inf, scores.matrix)
    return outputs


def main() -> None:
    torch.set_num_threads(THREADS)
    x_all, y_all = data(N + Q)
    x, y, xq, yq = x_all[:N], y_all[:N], x_all[N:], y_all[N:]
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=ARCH["n_features"], n_classes=20,
                                                    hidden=tuple(ARCH["hidden"])))
    timings = {dim: {"self_influence": [], "score": []} for dim in DIMS}
    with tempfile.TemporaryDirectory(prefix="kron-captum-") as tmp:
        work = Path(tmp)
        for name, arr in (("x", x), ("y", y), ("xq", xq), ("yq", yq)):
            np.save(work / f"{name}.npy", arr)
        (work / "arch.json").write_text(json.dumps(ARCH))
        lrs = train_checkpoints(adapter, x, y, work)
        checkpoints = []
        for i, lr in enumerate(lrs):
            model = adapter.build_model()
            model.load_state_dict(torch.load(work / f"ckpt-{i}.pt", weights_only=True))
            checkpoints.append(CheckpointModel(model=model.eval(), learning_rate=lr))
        frame = pl.DataFrame({"example_id": np.arange(N), "features": x, "label": y})
        queries = pl.DataFrame({"example_id": np.arange(N, N + Q), "features": xq, "label": yq})
        ctx = ScoringContext(adapter=adapter, checkpoints=tuple(checkpoints), train=frame, queries=queries,
                             batch_size=ARCH["batch_size"])
        ghost_s, ghost = timed(lambda: TracInScorer(TracInConfig(normalize="none")).self_influence(ctx), 1)
        outputs = ours_round(ctx, timings)  # our repeats bracket captum's run (the cores are shared)
        peer = run_captum(work)
        for _ in range(REPEATS - 1):
            outputs = ours_round(ctx, timings)
        if "seconds" in peer:
            peer["exact_self_influence_vs_ours_ghost"] = agreement(ghost, np.load(work / "captum_self.npy"))
            captum_matrix = np.load(work / "captum_influence.npy").T  # -> [n_train, n_query]
    work_units = N * len(lrs)
    model = checkpoints[0].model
    ours = []
    for dim in DIMS:
        proj = KroneckerProjector(model, adapter.tracked_modules(model), ProjectionConfig(kind="kronecker", dim=dim))
        self_inf, matrix = outputs[dim]
        entry = {
            "dim": dim, "feature_width": proj.dim,
            "layers": [{"module": la.name, "d_in": la.d_in, "d_out": la.d_out, "k_in": la.k_in, "k_out": la.k_out}
                       for la in proj.layers],
            "self_influence_seconds": timings[dim]["self_influence"], "score_seconds": timings[dim]["score"],
            "feature_examples_ckpts_per_s": work_units / float(np.median(timings[dim]["self_influence"])),
            "self_influence_vs_exact_ghost": agreement(self_inf, ghost),
        }
        if "seconds" in peer:
            per_query = [pearsonr(matrix[:, j], captum_matrix[:, j])[0] for j in range(Q)]
            entry["matrix_vs_captum_exact"] = {**agreement(matrix, captum_matrix),
                                               "per_query_pearson_mean": float(np.mean(per_query)),
                                               "per_query_pearson_min": float(np.min(per_query))}
            entry["throughput_ratio_features_vs_captum_self_influence"] = (
                peer["seconds"] / float(np.median(timings[dim]["self_influence"])))
            entry["throughput_ratio_score_vs_captum_influence"] = (
                peer["influence_seconds"] / float(np.median(timings[dim]["score"])))
        ours.append(entry)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "examples": N, "queries": Q, "checkpoints": len(lrs),
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": THREADS, "batch_size": ARCH["batch_size"], "repeats_ours": REPEATS,
        "ours_kronecker": ours,
        "ours_exact_ghost_self_influence_seconds": ghost_s[0],
        "captum": peer,
    }
    if "seconds" in peer:
        result["captum_examples_ckpts_per_s"] = work_units / peer["seconds"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, OUT)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
