"""Runs INSIDE the tree-influence 0.1.7 peer venv (never imported by the project): fits an LGBMClassifier on the
arrays in ``--data`` (npz: x_train, y_train, x_test, y_test) with the parameters in ``--params`` (JSON), saves its
booster in LightGBM's text format (so our side scores the very same booster), then times the peer's explainer
``fit`` and ``get_local_influence`` and writes the influence matrix to ``--out`` (npz).

    /work/peers/tree-influence/bin/python benchmarks/gbdt/peer_tree_influence.py --data d.npz \\
        --params p.json --method boostin --model-out model.txt --out peer.npz
"""

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from lightgbm import LGBMClassifier
from tree_influence.explainers import BoostIn, LeafInfluence, Trex

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--params", required=True)
parser.add_argument("--method", required=True, choices=["boostin", "leaf_influence", "trex"])
parser.add_argument("--update-set", type=int, default=-1)
parser.add_argument("--model-out", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--self-influence", action="store_true")
args = parser.parse_args()

data = np.load(args.data)
model = LGBMClassifier(**json.loads(Path(args.params).read_text()))
model.fit(data["x_train"], data["y_train"])
model.booster_.save_model(args.model_out)
explainer = {"boostin": lambda: BoostIn(), "trex": lambda: Trex(),
             "leaf_influence": lambda: LeafInfluence(update_set=args.update_set)}[args.method]()
start = time.perf_counter()
explainer.fit(model, data["x_train"], data["y_train"])
fit_s = time.perf_counter() - start
start = time.perf_counter()
matrix = explainer.get_local_influence(data["x_test"], data["y_test"])
local_s = time.perf_counter() - start
out = {"matrix": matrix, "fit_s": fit_s, "local_s": local_s,
       "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if args.self_influence:
    start = time.perf_counter()
    out["self_influence"] = explainer.get_self_influence(data["x_train"], data["y_train"])
    out["self_s"] = time.perf_counter() - start
np.savez(args.out, **out)
print(json.dumps({k: float(v) for k, v in out.items() if np.ndim(v) == 0}))
