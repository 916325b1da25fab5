"""The demo's provenance null bank trained locally and as Ray tasks (docs/operations.md, "Scaling out on Ray").

Trains ``--models`` bank models exactly as ``provenance_suspects`` does (``train_from_scratch``: our LM's
architecture and the ``reference_train`` recipe, one epoch on a seeded shuffle of the demo's training table, seeds
100, 101, ...) once through the local executor (one process, torch's default threads) and once on a Ray started
here with ``--cpus`` CPUs (one task per model, one torch thread each). Reports both wall times (Ray's including its
start) and the largest weight difference between the two runs' models.

Run (needs a finished demo folder for its table and checkpoint):
``python -m benchmarks.provenance.bank_executor --demo /path/to/demo`` -> results/bank_executor.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from curation.executors import ExecutorConfig, map_shards
from curation.io import read_table, write_json
from curation.models.base import load_adapter_model
from curation.provenance.retrain import OrderedTrainConfig, ScratchModel, train_from_scratch

OUT = Path(__file__).parent / "results" / "bank_executor.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", required=True, help="a folder where the demo pipeline ran")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    demo = Path(args.demo)
    train = read_table(demo / "data/corpus/train.parquet")
    adapter, _, _ = load_adapter_model(str(demo / "checkpoints/lm"))
    recipe = OrderedTrainConfig(learning_rate=3e-3, batch_size=8)  # params.yaml provenance_suspects.reference_train
    jobs = [ScratchModel(f"null_{s}", s, adapter, recipe) for s in range(100, 100 + args.models)]
    out = {"models": len(jobs), "rows": train.height, "local_threads": torch.get_num_threads(), "ray_cpus": args.cpus}

    start = time.perf_counter()
    local = dict(map_shards(train_from_scratch, jobs, shared={"frame": train}, config=ExecutorConfig()))
    out["local_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    remote = dict(map_shards(train_from_scratch, jobs, shared={"frame": train},
                             config=ExecutorConfig(kind="ray", num_cpus=args.cpus)))
    out["ray_s_including_start"] = round(time.perf_counter() - start, 1)
    out["max_abs_weight_difference"] = max(float((local[i][k] - remote[i][k]).abs().max())
                                           for i in local for k in local[i])
    write_json(out, OUT)
    print(out)


if __name__ == "__main__":
    main()
