"""traker / dattri side of ``trak_vs_peers``: runs in its own venv (/work/venvs/trak_peers), not the project's.

Reads the models and data prepared by the orchestrator from ``--workdir`` and computes TRAK scores of every training
example for every query with ``--library traker`` (traker 0.3.2: ``TRAKer`` with the CPU ``BasicProjector``, Gaussian
entries, float32) or ``--library dattri`` (dattri 0.3.0: ``TRAKAttributor``, Gaussian projection on CPU). Both use the
margin ``logit_y - logsumexp_{j != y} logit_j`` as model output for train and query gradients, ``1 - p_y`` as the
out-to-loss weight, the projection dimension and ridge from ``spec.json``, and every saved model as one ensemble
member. Writes ``scores_<library>.npy`` ([n_train, n_query], float64) and ``timing_<library>.json``; the time
covers featurising, the kernel inverse and scoring (not imports or data loading). Self-contained on purpose: the
project is not installed in this venv.
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
from peer_mlp import build_mlp  # sibling file; the worker runs as a script in the peer venv
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM = peak RSS since exec, VmRSS = current)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``logit_y - logsumexp_{j != y} logit_j`` for a batch (the numerically stable form of log p/(1-p))."""
    true = logits.gather(-1, label.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, label.unsqueeze(-1), float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def run_traker(spec: dict, models: list[dict], train: TensorDataset, query: TensorDataset, batch: int) -> np.ndarray:
    from trak import TRAKer
    from trak.projectors import BasicProjector, ProjectionType

    model = build_mlp(spec["sizes"])
    n_params = sum(p.numel() for p in model.parameters())
    projector = BasicProjector(grad_dim=n_params, proj_dim=spec["proj_dim"], seed=spec["seed"],
                               proj_type=ProjectionType.normal, device="cpu", dtype=torch.float32)
    with tempfile.TemporaryDirectory() as save_dir:
        traker = TRAKer(model=model, task="image_classification", train_set_size=len(train), save_dir=save_dir,
                        device="cpu", projector=projector, use_half_precision=False, lambda_reg=spec["ridge"],
                        logging_level=40)
        for model_id, state in enumerate(models):
            traker.load_checkpoint(state, model_id=model_id)
            for x, y in DataLoader(train, batch_size=batch):
                traker.featurize(batch=(x, y), num_samples=len(y))
        traker.finalize_features()
        for model_id, state in enumerate(models):
            traker.start_scoring_checkpoint("bench", state, model_id=model_id, num_targets=len(query))
            for x, y in DataLoader(query, batch_size=batch):
                traker.score(batch=(x, y), num_samples=len(y))
        return np.asarray(traker.finalize_scores("bench"), dtype=np.float64)


def run_dattri(spec: dict, models: list[dict], train: TensorDataset, query: TensorDataset, batch: int) -> np.ndarray:
    from dattri.algorithm.trak import TRAKAttributor
    from dattri.task import AttributionTask

    model = build_mlp(spec["sizes"])

    def output(params, data):  # one example (dattri vmaps over the batch)
        x, y = data
        logits = torch.func.functional_call(model, params, x.unsqueeze(0))
        return margin(logits, y.unsqueeze(0)).squeeze(0)

    def correct_probability(params, data):
        x, y = data
        logits = torch.func.functional_call(model, params, x.unsqueeze(0))
        return torch.exp(-F.cross_entropy(logits, y.unsqueeze(0)))

    task = AttributionTask(loss_func=output, model=model, checkpoints=models, target_func=output)
    attributor = TRAKAttributor(task=task, correct_probability_func=correct_probability, device="cpu",
                                projector_kwargs={"proj_dim": spec["proj_dim"], "proj_seed": spec["seed"],
                                                  "proj_max_batch_size": batch, "device": "cpu"},
                                regularization=spec["ridge"])
    attributor.cache(DataLoader(train, batch_size=batch, shuffle=False))
    with torch.no_grad():
        return np.asarray(attributor.attribute(DataLoader(query, batch_size=batch, shuffle=False)), dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--library", choices=["traker", "dattri"], required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    work = Path(args.workdir)
    spec = json.loads((work / "spec.json").read_text())
    models = [load_file(str(work / f"model_{m}.safetensors")) for m in range(spec["n_models"])]
    train = TensorDataset(torch.from_numpy(np.load(work / "train_x.npy")), torch.from_numpy(np.load(work / "train_y.npy")))
    query = TensorDataset(torch.from_numpy(np.load(work / "query_x.npy")), torch.from_numpy(np.load(work / "query_y.npy")))
    rss_before = proc_status_mb("VmRSS")
    start = time.perf_counter()
    runner = run_traker if args.library == "traker" else run_dattri
    scores = runner(spec, models, train, query, args.batch_size)
    seconds = time.perf_counter() - start
    np.save(work / f"scores_{args.library}.npy", scores)
    (work / f"timing_{args.library}.json").write_text(json.dumps({
        "seconds": seconds, "peak_rss_mb": proc_status_mb("VmHWM"), "rss_before_mb": rss_before,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
