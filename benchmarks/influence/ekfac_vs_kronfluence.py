"""Our EK-FAC vs kronfluence 1.0.1 on the same model, data and damping: wall time, peak memory, score agreement.

Sizes: ``digits`` (64-128-10 MLP, 1,437 train, 360 queries) and ``newsgroups`` (20 Newsgroups train, 11,314 docs as
2,048 TF-IDF features, 2048-512-20 MLP = 1.06 M parameters, 32 test queries; needs ``CURATION_SHARED_DATA``).
For each size the orchestrator trains the model once, writes it and the data to a work folder, then runs each side
in its own fresh process (ours in the project venv, kronfluence in /work/venvs/kronfluence, installed by this
script if missing) with one torch thread. Both use the true Fisher (labels sampled from the model), the heuristic
damping ``0.1 x mean eigenvalue`` per module, full-rank queries and float32 scores; time covers fitting the
factors and scoring (not imports or data loading); memory is the worker's peak RSS. Agreement: Pearson of all
train x query scores, and the same with the empirical Fisher (no sampling noise) on digits. With
``--peer-timeout T`` a kronfluence worker still running after T seconds is stopped and only the bound
``ours / T`` on the time ratio is recorded (no agreement figures for that size).

Run: ``python -m benchmarks.influence.ekfac_vs_kronfluence --out benchmarks/influence/results/ekfac_vs_kronfluence.json``
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
from typing import ClassVar

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy.stats import pearsonr, spearmanr

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.ekfac import EKFACConfig, EKFACInfluence
from curation.io import write_json
from curation.models.base import Batch
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter

PEER_VENV = Path("/work/venvs/kronfluence")
WORKER = Path(__file__).with_name("kronfluence_worker.py")


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM = peak RSS since exec, VmRSS = current)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def shared_data() -> Path:
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("CURATION_SHARED_DATA", root.parent / "shared" / "data"))


def ensure_peer_venv() -> Path:
    """Create the kronfluence venv (torch 2.13.0 first, then kronfluence 1.0.1) if it is missing."""
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import kronfluence"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "kronfluence==1.0.1", "torch==2.13.0", "numpy", "safetensors"], check=True)
    return python


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    from curation.data.digits import DigitsConfig, build_digits

    train, test, _ = build_digits(DigitsConfig(noise_fraction=0.0))

    def arrays(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(frame["features"].to_list(), dtype=np.float32), frame["label"].to_numpy().astype(np.int64)

    x, y = arrays(train)
    xq, yq = arrays(test)
    return x, y, xq, yq, [64, 128, 10]


def newsgroups_data(n_queries: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    folder = shared_data() / "20newsgroups"
    train, test = pl.read_parquet(folder / "train.parquet"), pl.read_parquet(folder / "test.parquet")
    vec = TfidfVectorizer(max_features=2048, sublinear_tf=True, stop_words="english", dtype=np.float32)
    x = vec.fit_transform(train["text"].to_list()).toarray()
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(test.height, n_queries, replace=False))
    xq = vec.transform(test["text"].gather(pick).to_list()).toarray()
    return x, train["label"].to_numpy().astype(np.int64), xq, test["label"].to_numpy()[pick].astype(np.int64), \
        [2048, 512, 20]


def fit_mlp(x: np.ndarray, y: np.ndarray, sizes: list[int], epochs: int) -> dict[str, torch.Tensor]:
    """A plainly trained MLP (Adam, weight decay 1e-4): the object both implementations analyse."""
    torch.manual_seed(0)
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=sizes[0], n_classes=sizes[-1], hidden=tuple(sizes[1:-1])))
    model = adapter.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


class ArrayAdapter(MLPClassifierAdapter):
    """The MLP adapter over in-memory arrays: rows carry only ``row``, so collation is an index (no list parsing)."""

    name: ClassVar[str] = "mlp_array"

    def __init__(self, config: ClassifierConfig, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(config)
        self.x, self.y = x, y

    def collate(self, frame: pl.DataFrame) -> Batch:
        idx = torch.from_numpy(frame["row"].to_numpy().copy())
        return {"x": self.x[idx], "y": self.y[idx]}


def run_ours(work: Path, empirical: bool, batch_size: int) -> None:
    """Worker (fresh process): our EK-FAC on the prepared work folder."""
    torch.set_num_threads(1)
    spec = json.loads((work / "spec.json").read_text())
    sizes = spec["sizes"]
    config = ClassifierConfig(n_features=sizes[0], n_classes=sizes[-1], hidden=tuple(sizes[1:-1]))
    x, y = torch.from_numpy(np.load(work / "train_x.npy")), torch.from_numpy(np.load(work / "train_y.npy"))
    xq, yq = torch.from_numpy(np.load(work / "query_x.npy")), torch.from_numpy(np.load(work / "query_y.npy"))
    train_adapter = ArrayAdapter(config, torch.cat([x, xq]), torch.cat([y, yq]))
    model = train_adapter.build_model()
    model.load_state_dict(load_file(str(work / "model.safetensors")))
    model.eval()
    n, m = len(y), len(yq)
    train = pl.DataFrame({"example_id": np.arange(n), "row": np.arange(n)})
    queries = pl.DataFrame({"example_id": np.arange(m), "row": np.arange(n, n + m)})
    rss_before = proc_status_mb("VmRSS")
    start = time.perf_counter()
    ctx = ScoringContext(adapter=train_adapter, checkpoints=(CheckpointModel(model=model),), train=train,
                         queries=queries, batch_size=batch_size)
    result = EKFACInfluence(EKFACConfig(damping=None, self_influence=False,
                                        fisher="empirical" if empirical else "sampled")).score(ctx)
    seconds = time.perf_counter() - start
    tag = "_empirical" if empirical else ""
    np.save(work / f"scores_ours{tag}.npy", result.matrix)
    (work / f"timing_ours{tag}.json").write_text(json.dumps({
        "seconds": seconds, "peak_rss_mb": proc_status_mb("VmHWM"),
        "rss_before_mb": rss_before, "torch": torch.__version__,
    }))


def compare(work: Path, tag: str) -> dict:
    ours, peer = np.load(work / f"scores_ours{tag}.npy"), np.load(work / f"scores_kronfluence{tag}.npy")
    t_ours = json.loads((work / f"timing_ours{tag}.json").read_text())
    t_peer = json.loads((work / f"timing_kronfluence{tag}.json").read_text())
    per_query = [spearmanr(ours[:, j], peer[:, j]).statistic for j in range(ours.shape[1])]
    return {
        "ours": t_ours, "kronfluence": t_peer,
        "time_ratio_ours_over_kronfluence": t_ours["seconds"] / t_peer["seconds"],
        "pearson_all_scores": float(pearsonr(ours.ravel(), peer.ravel()).statistic),
        "spearman_per_query_mean": float(np.mean(per_query)),
        "scale_ratio_ours_over_kronfluence": float(np.linalg.norm(ours) / np.linalg.norm(peer)),
    }


def bench_size(
    name: str, peer_python: Path, *, batch_size: int, repeats: int, empirical: bool, peer_timeout: float | None
) -> dict:
    if name == "digits":
        x, y, xq, yq, sizes = digits_data()
        epochs = 30
    else:
        x, y, xq, yq, sizes = newsgroups_data()
        epochs = 3
    state = fit_mlp(x, y, sizes, epochs)
    out: dict = {"n_train": len(y), "n_query": len(yq), "sizes": sizes,
                 "n_params": int(sum(v.numel() for v in state.values())), "batch_size": batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for key, arr in {"train_x": x, "train_y": y, "query_x": xq, "query_y": yq}.items():
            np.save(work / f"{key}.npy", arr)
        save_file(state, str(work / "model.safetensors"))
        (work / "spec.json").write_text(json.dumps({"sizes": sizes}))
        for tag, flag in [("", [])] + ([("_empirical", ["--empirical"])] if empirical else []):
            runs = []
            for _ in range(repeats):
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                subprocess.run([sys.executable, "-m", "benchmarks.influence.ekfac_vs_kronfluence", "worker",
                                "--workdir", str(work), "--batch-size", str(batch_size), *flag],
                               check=True, env=env, cwd=Path(__file__).resolve().parents[2])
                try:
                    subprocess.run([str(peer_python), str(WORKER), "--workdir", str(work), "--batch-size",
                                    str(batch_size), *flag], check=True, env=env, timeout=peer_timeout)
                except subprocess.TimeoutExpired:
                    ours = json.loads((work / f"timing_ours{tag}.json").read_text())
                    out["sampled_fisher" if not tag else "empirical_fisher"] = {
                        "ours": ours, "kronfluence": {"timed_out_after_s": peer_timeout},
                        "time_ratio_ours_over_kronfluence_at_most": ours["seconds"] / peer_timeout,
                    }
                    return out
                runs.append(compare(work, tag))
            best = min(runs, key=lambda r: r["ours"]["seconds"])
            best["kronfluence"]["seconds"] = min(r["kronfluence"]["seconds"] for r in runs)
            best["time_ratio_ours_over_kronfluence"] = best["ours"]["seconds"] / best["kronfluence"]["seconds"]
            best["repeats"] = repeats
            out["sampled_fisher" if not tag else "empirical_fisher"] = best
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker")
    worker.add_argument("--workdir", required=True)
    worker.add_argument("--batch-size", type=int, default=256)
    worker.add_argument("--empirical", action="store_true")
    parser.add_argument("--out", default="benchmarks/influence/results/ekfac_vs_kronfluence.json")
    parser.add_argument("--sizes", nargs="*", default=["digits", "newsgroups"])
    parser.add_argument("--peer-timeout", type=float, default=None,
                        help="seconds after which the kronfluence worker is stopped (recorded as a bound)")
    args = parser.parse_args()
    if args.command == "worker":
        run_ours(Path(args.workdir), args.empirical, args.batch_size)
        return
    peer = ensure_peer_venv()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}  # sizes not rerun keep their last results
    for size in args.sizes:
        if size == "newsgroups" and not (shared_data() / "20newsgroups").exists():
            print(f"skipping {size}: {shared_data()} has no 20newsgroups")
            continue
        results[size] = bench_size(size, peer, batch_size=256, repeats=2 if size == "digits" else 1,
                                   empirical=size == "digits", peer_timeout=args.peer_timeout)
        print(json.dumps({size: results[size]}, indent=1))
    write_json(results, out)


if __name__ == "__main__":
    main()
