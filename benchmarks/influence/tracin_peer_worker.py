"""Peer side of ``tracin_vs_peer_lds``: dattri 0.3.0 ``TracInAttributor`` or captum 0.9.0 ``TracInCP`` on the
orchestrator's checkpoints and data. Runs as a script in the peer's venv (/work/peers/dattri, /work/peers/captum);
the project is not importable there, so it reads plain files and imports ``peer_mlp`` from its own folder.

``--workdir`` holds x.npy, y.npy (train), xq.npy, yq.npy (queries), arch.json (layer widths), jobs.json (a list of
``{"name", "library", "checkpoints": [file, ...], "weights": [float, ...], "projection": "identity" | "normal:<k>",
"normalized": bool (dattri's unit-normalised Grad-Cos/CosIn form), "variant": "TracInCP" | "TracInCPFast" (captum)}``)
and the state-dict files (``torch.save``). For every job whose library is ``--library`` it writes
``scores_<name>.npy`` ([n_train, n_query], positive = helpful) and ``timing_<library>.json``. With lds_masks.npy and
lds_outcomes_<truth>.npy present it also evaluates each job with ``dattri.metric.lds`` (dattri only) against
``-outcomes`` (its ground truth is higher-is-better), as a cross-check of the orchestrator's LDS function.

What each peer computes (read from their 0.3.0 / 0.9.0 sources): dattri sums ``weight_k * <P g_train, P g_test>``
over checkpoints with ``g`` the gradient of the task's loss (cross-entropy here, for train and test) and ``P`` its
random projector (``normal`` 512 dims by default; ``identity`` keeps the exact gradients); its MNIST benchmark passes
10 full-data models trained with different seeds and weights ``1e-3``. captum ``TracInCP`` sums
``lr_k * <g_train, g_test>`` with ``lr_k`` returned by the checkpoint load function, exact gradients;
``TracInCPFast`` the same restricted to the final linear layer's weight (its factorised ``(p - y) ⊗ h`` form).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peer_mlp import build_mlp  # sibling file; the worker runs as a script in the peer venv
from torch.utils.data import DataLoader, TensorDataset


def dattri_scores(work: Path, job: dict, data: dict, model: torch.nn.Module) -> np.ndarray:
    from dattri.algorithm.tracin import TracInAttributor
    from dattri.task import AttributionTask

    def loss(params, pair):
        x, y = pair
        return F.cross_entropy(torch.func.functional_call(model, params, x.unsqueeze(0)), y.unsqueeze(0))

    states = [torch.load(work / f, weights_only=True) for f in job["checkpoints"]]
    task = AttributionTask(loss_func=loss, model=model, checkpoints=states)
    kind, _, dim = job["projection"].partition(":")
    projector = {"proj_type": "identity", "proj_dim": 1} if kind == "identity" else {
        "proj_type": kind, "proj_dim": int(dim), "proj_seed": 0}
    attributor = TracInAttributor(task=task, weight_list=torch.tensor(job["weights"], dtype=torch.float64),
                                  normalized_grad=bool(job.get("normalized")), projector_kwargs=projector, device="cpu")
    train = DataLoader(TensorDataset(data["x"], data["y"]), batch_size=256, shuffle=False)
    test = DataLoader(TensorDataset(data["xq"], data["yq"]), batch_size=256, shuffle=False)
    with torch.no_grad():
        return attributor.attribute(train, test).double().numpy()


def captum_scores(work: Path, job: dict, data: dict, model: torch.nn.Module) -> np.ndarray:
    from captum.influence import TracInCP, TracInCPFast

    weights = dict(zip(job["checkpoints"], job["weights"], strict=True))

    def load(m: torch.nn.Module, path: str) -> float:
        m.load_state_dict(torch.load(path, weights_only=True))
        return weights[Path(path).name]

    common = {"train_dataset": TensorDataset(data["x"], data["y"]), "checkpoints_load_func": load,
              "checkpoints": [str(work / f) for f in job["checkpoints"]], "batch_size": 256,
              "loss_fn": torch.nn.CrossEntropyLoss(reduction="sum")}
    if job.get("variant") == "TracInCPFast":
        tracin = TracInCPFast(model, final_fc_layer=model[-1], **common)
    else:
        tracin = TracInCP(model, sample_wise_grads_per_batch=True, **common)
    return tracin.influence((data["xq"], data["yq"]), show_progress=False).double().numpy().T


def dattri_lds(work: Path, scores: np.ndarray) -> dict:
    """Mean ``dattri.metric.lds`` over queries for each ground truth in the workdir."""
    from dattri.metric import lds

    masks = np.load(work / "lds_masks.npy")
    indices = torch.from_numpy(np.stack([np.flatnonzero(m) for m in masks]))
    out = {}
    for path in sorted(work.glob("lds_outcomes_*.npy")):
        values = -torch.from_numpy(np.load(path))
        corr = lds(torch.from_numpy(scores), (values, indices))[0]
        out[path.stem.removeprefix("lds_outcomes_")] = float(corr[~torch.isnan(corr)].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--library", choices=["dattri", "captum"], required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.workdir)
    data = {k: torch.from_numpy(np.load(work / f"{k}.npy")) for k in ("x", "y", "xq", "yq")}
    model = build_mlp(json.loads((work / "arch.json").read_text())["sizes"]).double().eval()
    timing: dict = {"torch": torch.__version__}
    for job in json.loads((work / "jobs.json").read_text()):
        if job["library"] != args.library:
            continue
        start = time.perf_counter()
        fn = dattri_scores if args.library == "dattri" else captum_scores
        scores = fn(work, job, data, model)
        timing[job["name"]] = {"seconds": time.perf_counter() - start}
        np.save(work / f"scores_{job['name']}.npy", scores)
        if args.library == "dattri" and (work / "lds_masks.npy").exists():
            timing[job["name"]]["dattri_metric_lds"] = dattri_lds(work, scores)
    (work / f"timing_{args.library}.json").write_text(json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
