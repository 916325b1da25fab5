"""Kill and resume: ``compute_gradients`` SIGKILLed at six different points resumes into stores that are
byte-identical to an uninterrupted run, and so are the TracIn scores read from them; damaged store files (a flipped
bit, a truncated array, garbage metadata) are detected and recomputed, never trusted.

The stage runs in real processes: ``kill_driver.py`` imports it once and forks one child per run, each child
running ``curation.stages.compute_gradients.run()`` on a small project (two tiny byte-GPT checkpoints with train
and query tables, two MLP checkpoints) and dying by SIGKILL right before a chosen memory-map flush or rename into
the store, or from outside mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from curation.attribution.tracin import tracin_matrix, tracin_self
from curation.gradients.store import GradientStore
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig

DRIVER = Path(__file__).with_name("kill_driver.py")
LM = {"n_layer": 1, "n_head": 2, "d_model": 16, "block_size": 16}
MLP = {"n_features": 6, "n_classes": 3, "hidden": [8]}
LRS = (0.1, 0.05)
ROWS = {"lm_train": 20, "lm_query": 6, "classifier": 30}
# Flushes per store write: grads, values, digests, done (a file's first write adds one flush before its rename).
# With shards of 5 (lm) and 8 (classifier) rows and two checkpoints, the lm train store takes flushes 1-40, the
# lm query store 41-64 and the classifier store 65-104.
KILLS = {
    "metadata": ["replace", 1],  # the first rename into the store: the lm store's metadata.json
    "first_rows": ["flush", 3],  # checkpoint 0, shard 0: rows written, not flushed, nothing marked done
    "mid_shard": ["flush", 14],  # checkpoint 0, shard 2: gradients flushed, values not, no digest, not done
    "before_done": ["flush", 27],  # checkpoint 1, shard 0: rows and digests flushed, done mask not yet created
    "classifier": ["flush", 75],  # lm stores complete, classifier store part-way through checkpoint 0
    "external": ["external", 30],  # kill -9 from outside once >= 30 rows are recorded
}
# A bit of row 13 of lm checkpoint 1 (7 rows of 16 float32 from the end), 10 bytes off a values file, and metadata
# that is not JSON.
DAMAGE = [
    ["flip", "store/lm/train-*/ckpt=1/grads.npy", -7 * 16 * 4 + 5],
    ["truncate", "store/classifier/train-*/ckpt=0/values.npy", 10],
    ["write", "store/lm/query-*/metadata.json", '{"adapter": "byte_gp'],
]


def _save_run(folder: Path, adapter_name: str, config: dict, models: list[torch.nn.Module]) -> None:
    folder.mkdir(parents=True)
    entries = []
    for step, (model, lr) in enumerate(zip(models, LRS, strict=True), start=1):
        name = f"ckpt-{step}.safetensors"
        save_checkpoint(folder / name, model.state_dict(),
                        CheckpointInfo(adapter=adapter_name, model_config=config, step=step, learning_rate=lr))
        entries.append({"file": name, "step": step, "learning_rate": lr})
    (folder / "checkpoints.json").write_text(json.dumps({"checkpoints": entries}), encoding="utf-8")


def _make_project(root: Path) -> None:
    """Tables, two checkpoints per model and a params.yaml with small shards (2-4 per checkpoint)."""
    rng = np.random.default_rng(0)
    words = ["data", "model", "byte", "grad", "store", "shard", "kill", "resume"]
    texts = [" ".join(rng.choice(words, size=4)) for _ in range(ROWS["lm_train"] + ROWS["lm_query"])]
    n = ROWS["lm_train"]
    pl.DataFrame({"example_id": [f"t{i}" for i in range(n)], "text": texts[:n]}).write_parquet(root / "lm_train.parquet")
    pl.DataFrame({"example_id": [f"v{i}" for i in range(ROWS["lm_query"])], "text": texts[n:],
                  "domain": ["a", "b"] * (ROWS["lm_query"] // 2)}).write_parquet(root / "lm_val.parquet")
    n = ROWS["classifier"]
    pl.DataFrame({"example_id": [f"r{i}" for i in range(n)], "features": rng.normal(size=(n, 6)).tolist(),
                  "label": rng.integers(0, 3, n)}).write_parquet(root / "digits.parquet")
    lm = ByteGPTAdapter(ByteGPTConfig(**LM))
    mlp = MLPClassifierAdapter(ClassifierConfig(**{**MLP, "hidden": tuple(MLP["hidden"])}))
    torch.manual_seed(0)
    _save_run(root / "ckpt" / "lm", "byte_gpt", LM, [lm.build_model(), lm.build_model()])
    _save_run(root / "ckpt" / "classifier", "mlp", MLP, [mlp.build_model(), mlp.build_model()])
    job = {"batch_size": 4, "projection": {"kind": "gaussian", "dim": 16}}
    params = {"compute_gradients": {
        "store": "store",
        "lm": {**job, "checkpoints": "ckpt/lm", "train_data": "lm_train.parquet", "query_data": "lm_val.parquet",
               "shard_size": 5},
        "classifier": {**job, "checkpoints": "ckpt/classifier", "train_data": "digits.parquet", "shard_size": 8},
    }}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def _exit(run_dir: Path, step: int) -> dict:
    return json.loads((run_dir / f"exit-{step}.json").read_text(encoding="utf-8"))


def _store_files(run_dir: Path) -> dict[str, bytes]:
    """Every visible store file (hidden temporaries left by a killed rename are never read by the store)."""
    store = run_dir / "store"
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(store).parts)}


def _scores(run_dir: Path) -> list[np.ndarray]:
    """TracIn retrieval matrix and self-influence (lm) and self-influence (classifier) from the run's stores,
    read through ``GradientStore`` (which re-checks every row's digest)."""

    def features(folder: Path) -> list[np.ndarray]:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        store = GradientStore(folder, meta, n_rows=meta["n_rows"], dim=meta["dim"])
        return [np.array(store.grads(str(c))) for c in range(len(LRS))]

    store = run_dir / "store"
    train, query = features(next(store.glob("lm/train-*"))), features(next(store.glob("lm/query-*")))
    classifier = features(next(store.glob("classifier/train-*")))
    return [tracin_matrix(train, query, LRS, normalize="both"), tracin_self(train, LRS), tracin_self(classifier, LRS)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One driver process: an uninterrupted run (``full``); per kill point a killed run then a plain resumed run;
    a complete run whose store is then damaged and run again (``damaged``)."""
    root = tmp_path_factory.mktemp("kill")
    template = root / "template"
    template.mkdir()
    _make_project(template)
    plan = []
    for name in ("full", *KILLS, "damaged"):
        shutil.copytree(template, root / name)
        plan.append({"dir": str(root / name), "kill": None})
        if name in KILLS:
            plan[-1]["kill"] = KILLS[name]
            plan.append({"dir": str(root / name), "kill": None})
        if name == "damaged":
            plan.append({"dir": str(root / name), "kill": None, "damage": DAMAGE})
    for step, run in enumerate(plan):
        (Path(run["dir"]) / "steps.txt").open("a").write(f"{step}\n")
    (root / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
           "CURATION_PROJECT_ROOT": str(root)}  # one MLflow store for every run
    proc = subprocess.run([sys.executable, str(DRIVER), str(root / "plan.json")], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _steps(run_dir: Path) -> list[int]:
    return [int(s) for s in (run_dir / "steps.txt").read_text().split()]


def test_uninterrupted_run_completes(runs: Path) -> None:
    assert _exit(runs / "full", 0) == {"code": 0}
    done = sum(int(np.load(p).sum()) for p in (runs / "full").glob("store/*/*/ckpt=*/done.npy"))
    assert done == len(LRS) * sum(ROWS.values())


def test_kills_land_at_different_points(runs: Path) -> None:
    for name in KILLS:
        assert _exit(runs / name, _steps(runs / name)[0]) == {"signal": signal.SIGKILL}, name
    state = {name: json.loads((runs / name / "killed.json").read_text()) for name in KILLS}
    assert state["metadata"]["at"].endswith("metadata.json") and state["metadata"]["done_rows"] == 0
    assert [f for f in state["metadata"]["files"] if not f.endswith(".tmp")] == []
    assert state["first_rows"]["at"].endswith("ckpt=0/grads.npy") and state["first_rows"]["done_rows"] == 0
    assert state["mid_shard"]["at"].endswith("ckpt=0/values.npy") and state["mid_shard"]["done_rows"] == 10
    assert state["before_done"]["at"].endswith("ckpt=1/.done.npy.tmp") and state["before_done"]["done_rows"] == 20
    assert "store/classifier/" in state["classifier"]["at"]
    assert len(LRS) * (ROWS["lm_train"] + ROWS["lm_query"]) <= state["classifier"]["done_rows"] < 2 * 26 + 30
    assert state["external"]["at"].startswith("external kill")
    assert 30 <= state["external"]["done_rows"] < len(LRS) * sum(ROWS.values())
    assert len({(s["at"], s["done_rows"], tuple(s["files"])) for s in state.values()}) == len(KILLS)


@pytest.mark.parametrize("name", sorted(KILLS))
def test_resumed_store_is_identical(runs: Path, name: str) -> None:
    assert _exit(runs / name, _steps(runs / name)[1]) == {"code": 0}
    full, resumed = _store_files(runs / "full"), _store_files(runs / name)
    assert sorted(resumed) == sorted(full)
    assert [f for f in full if full[f] != resumed[f]] == []


def test_scores_from_resumed_stores_are_identical(runs: Path) -> None:
    expected = _scores(runs / "full")
    assert [s.shape for s in expected] == [(20, 6), (20,), (30,)]
    for name in KILLS:
        for got, want in zip(_scores(runs / name), expected, strict=True):
            assert got.tobytes() == want.tobytes(), name


def test_damaged_store_files_are_recomputed(runs: Path) -> None:
    """A flipped bit, a truncated values file and garbage metadata: each is noticed and rebuilt identically."""
    damaged = runs / "damaged"
    first, second = _steps(damaged)
    assert _exit(damaged, first) == {"code": 0} and _exit(damaged, second) == {"code": 0}
    log = (damaged / f"stderr-{second}.txt").read_text(encoding="utf-8")
    assert "ckpt=1/grads.npy: 1 rows do not match their digests (first row 13); recomputing them" in log
    assert "ckpt=0/values.npy: unreadable (" in log and "recomputing checkpoint 0" in log
    assert "metadata.json: unreadable store metadata" in log
    full, repaired = _store_files(runs / "full"), _store_files(damaged)
    assert sorted(repaired) == sorted(full)
    assert [f for f in full if full[f] != repaired[f]] == []
