"""Worker for tracin_vs_captum_a1.py and gradient_features_vs_captum.py, run inside the peer venv (captum + torch
only): captum TracInCP self-influence over the same MLP checkpoints and features. Args: WORKDIR (x.npy, y.npy,
ckpt-*.pt, lrs.json, arch.json) [THREADS]. Writes WORKDIR/captum.json (seconds) and WORKDIR/captum_self.npy; when
WORKDIR has query rows (xq.npy, yq.npy) it also times ``TracInCP.influence`` on them (train x query scores, exact
gradients) and writes captum_influence.npy ``[n_query, n_train]`` and ``influence_seconds``."""

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from captum.influence import TracInCP
from torch import nn
from torch.utils.data import TensorDataset


def main(work: Path) -> None:
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    arch = json.loads((work / "arch.json").read_text())
    lrs = json.loads((work / "lrs.json").read_text())
    widths = [arch["n_features"], *arch["hidden"], arch["n_classes"]]
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    x = torch.from_numpy(np.load(work / "x.npy"))
    y = torch.from_numpy(np.load(work / "y.npy"))
    paths = sorted(str(p) for p in work.glob("ckpt-*.pt"))

    def load(m: nn.Module, path: str) -> float:
        m.load_state_dict(torch.load(path, weights_only=True))
        return lrs[Path(path).name]

    start = time.perf_counter()
    tracin = TracInCP(model, TensorDataset(x, y), checkpoints=paths, checkpoints_load_func=load,
                      loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=arch["batch_size"],
                      sample_wise_grads_per_batch=True)
    scores = tracin.self_influence(show_progress=False)
    seconds = time.perf_counter() - start
    np.save(work / "captum_self.npy", scores.detach().numpy())
    result = {"seconds": seconds, "torch": torch.__version__}
    if (work / "xq.npy").exists():
        queries = (torch.from_numpy(np.load(work / "xq.npy")), torch.from_numpy(np.load(work / "yq.npy")))
        start = time.perf_counter()
        matrix = tracin.influence(queries, show_progress=False)
        result["influence_seconds"] = time.perf_counter() - start
        np.save(work / "captum_influence.npy", matrix.detach().numpy())
    (work / "captum.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
