"""kronfluence side of ``ekfac_vs_kronfluence``: runs in its own venv (/work/venvs/kronfluence), not the project's.

Reads the model and data prepared by the orchestrator from ``--workdir``, fits EK-FAC factors and computes pairwise
scores with kronfluence 1.0.1 (true Fisher with sampled labels, heuristic damping 0.1 x mean eigenvalue per module
unless ``--damping`` is given), then writes ``scores_kronfluence.npy`` ([n_train, n_query], our orientation) and
``timing_kronfluence.json``. Self-contained on purpose: the project is not installed in this venv.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kronfluence.analyzer import Analyzer, prepare_model
from kronfluence.arguments import FactorArguments, ScoreArguments
from kronfluence.task import Task
from peer_mlp import build_mlp  # sibling file; the worker runs as a script in the peer venv
from safetensors.torch import load_file
from torch.utils.data import TensorDataset


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM = peak RSS since exec, VmRSS = current)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class ClassificationTask(Task):
    """Summed cross-entropy; with ``sample=True`` labels are drawn from the model's predictive distribution."""

    def compute_train_loss(self, batch, model, sample=False):
        x, y = batch
        logits = model(x)
        if sample:
            with torch.no_grad():
                y = torch.multinomial(torch.softmax(logits.detach(), dim=-1), 1).flatten()
        return F.cross_entropy(logits, y, reduction="sum")

    def compute_measurement(self, batch, model):
        x, y = batch
        return F.cross_entropy(model(x), y, reduction="sum")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--damping", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--empirical", action="store_true", help="empirical Fisher (observed labels)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    work = Path(args.workdir)
    spec = json.loads((work / "spec.json").read_text())
    model = build_mlp(spec["sizes"])
    model.load_state_dict(load_file(str(work / "model.safetensors")))
    model.eval()
    train = TensorDataset(torch.from_numpy(np.load(work / "train_x.npy")), torch.from_numpy(np.load(work / "train_y.npy")))
    query = TensorDataset(torch.from_numpy(np.load(work / "query_x.npy")), torch.from_numpy(np.load(work / "query_y.npy")))
    rss_before = proc_status_mb("VmRSS")
    start = time.perf_counter()
    task = ClassificationTask()
    model = prepare_model(model, task)
    with tempfile.TemporaryDirectory() as out:
        analyzer = Analyzer("bench", model, task, cpu=True, output_dir=out, disable_tqdm=True)
        analyzer.fit_all_factors("ekfac", train, per_device_batch_size=args.batch_size,
                                 factor_args=FactorArguments(strategy="ekfac", use_empirical_fisher=args.empirical),
                                 overwrite_output_dir=True)
        analyzer.compute_pairwise_scores("scores", "ekfac", query, train, per_device_query_batch_size=len(query),
                                         per_device_train_batch_size=args.batch_size,
                                         score_args=ScoreArguments(damping_factor=args.damping),
                                         overwrite_output_dir=True)
        scores = analyzer.load_pairwise_scores("scores")["all_modules"].numpy()
    seconds = time.perf_counter() - start
    tag = "_empirical" if args.empirical else ""
    np.save(work / f"scores_kronfluence{tag}.npy", scores.T.astype(np.float32))
    (work / f"timing_kronfluence{tag}.json").write_text(json.dumps({
        "seconds": seconds,
        "peak_rss_mb": proc_status_mb("VmHWM"),
        "rss_before_mb": rss_before,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
