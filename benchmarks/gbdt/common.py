"""Shared pieces of the GBDT influence benchmarks: UCI Adult as float matrices (the project's ``TableEncoding``:
string columns -> ordinal codes; nulls -> -1 so the peer's own tree parser routes rows as LightGBM does), the
LightGBM settings, our scorers on a booster, the peer subprocess, and timing / peak-memory measurement."""

from __future__ import annotations

import json
import os
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curation.gbdt.boostin import boostin
from curation.gbdt.encoding import TableEncoding
from curation.gbdt.ensemble import Trajectory, TreeEnsemble
from curation.gbdt.leaf_influence import leaf_influence
from curation.gbdt.lightgbm_ensemble import ensemble_from_lightgbm
from curation.gbdt.trex import trex

RESULTS = Path(__file__).parent / "results"
PEER_PYTHON = Path("/work/peers/tree-influence/bin/python")
PEER_SCRIPT = Path(__file__).parent / "peer_tree_influence.py"
CLEANLAB_PYTHON = Path("/work/peers/cleanlab/bin/python")
# LightGBM defaults except a fixed seed, one thread and deterministic histograms; use_missing off because the
# peer's parser cannot route missing values (nulls are encoded as -1 instead).
PARAMS = {"n_estimators": 100, "num_leaves": 31, "learning_rate": 0.1, "reg_lambda": 0.0, "min_child_samples": 20,
          "random_state": 0, "n_jobs": 1, "deterministic": True, "force_row_wise": True, "use_missing": False,
          "verbose": -1}


def shared_data() -> Path:
    return Path(os.environ.get("CURATION_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def adult() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train [32561, 14], y_train, x_test [16281, 14], y_test)``; income (the label as text) is excluded."""
    train = pl.read_parquet(shared_data() / "adult" / "train.parquet")
    test = pl.read_parquet(shared_data() / "adult" / "test.parquet")
    enc = TableEncoding.fit(train, label="label", exclude=("income",))
    x_train, x_test = (np.nan_to_num(enc.matrix(frame, where=where), nan=-1.0)
                       for frame, where in ((train, "adult train"), (test, "adult test")))
    return x_train, enc.labels(train, where="adult train"), x_test, enc.labels(test, where="adult test")


def lgb_train_params(params: dict[str, Any] = PARAMS) -> tuple[dict[str, Any], int]:
    """The LGBMClassifier settings as ``lightgbm.train`` parameters and rounds."""
    names = {"reg_lambda": "lambda_l2", "min_child_samples": "min_data_in_leaf", "random_state": "seed",
             "n_jobs": "num_threads"}
    out = {names.get(k, k): v for k, v in params.items() if k != "n_estimators"}
    return {"objective": "binary", **out}, int(params["n_estimators"])


def fit_booster(x: np.ndarray, y: np.ndarray, params: dict[str, Any] = PARAMS) -> Any:
    import lightgbm

    train_params, rounds = lgb_train_params(params)
    return lightgbm.train(train_params, lightgbm.Dataset(x, y), num_boost_round=rounds)


def ours(method: str, ens: TreeEnsemble, train: Trajectory, queries: Trajectory | None) -> tuple[np.ndarray, ...]:
    """``(matrix, self_influence)`` of one of our methods: boostin, trex, leaf_influence_0, leaf_influence_-1."""
    if method == "boostin":
        return boostin(ens, train, queries)
    if method == "trex":
        return trex(ens, train, queries)
    update_set = int(method.rsplit("_", 1)[1])
    return leaf_influence(ens, train, queries, update_set=update_set, show_progress=False)


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, seconds, peak traced MiB)``: numpy registers its buffers with tracemalloc."""
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def run_peer(tmp: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             method: str, *, update_set: int = -1, params: dict[str, Any] = PARAMS,
             self_influence: bool = False) -> tuple[dict[str, Any], Any]:
    """Run tree-influence 0.1.7 in its venv on these arrays: ``(its figures and matrix, the booster it fitted)``."""
    from curation.gbdt.adapter import load_booster

    np.savez(tmp / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (tmp / "params.json").write_text(json.dumps(params))
    cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--data", str(tmp / "data.npz"), "--params", str(tmp / "params.json"),
           "--method", method, "--update-set", str(update_set), "--model-out", str(tmp / "model.txt"),
           "--out", str(tmp / "peer.npz")] + (["--self-influence"] if self_influence else [])
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
    peer = dict(np.load(tmp / "peer.npz"))
    booster = load_booster(tmp / "model.txt", {"features": [], "categories": {}, "label": "label"}).booster
    return peer, booster


def ensemble(booster: Any, y_train: np.ndarray) -> TreeEnsemble:
    return ensemble_from_lightgbm(booster, y_train)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path
