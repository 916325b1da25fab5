"""Driver for test_kill_resume: imports the compute_gradients stage once, then forks one child per run.

``python kill_driver.py PLAN.json`` runs the plan's steps in order. Each step ``{"dir", "kill", "damage"}`` forks
a child that changes into ``dir`` and runs ``python -m curation.stages.compute_gradients`` in-process (``run()``),
its stderr going to ``<dir>/stderr-<step>.txt``. ``kill`` is

- ``null``: run to completion;
- ``["flush", n]`` / ``["replace", n]``: the child SIGKILLs itself right before its n-th memory-map flush / its
  n-th rename into the store (the store's write order: rows, flush, digests, flush, done mask, flush; new files and
  metadata are renamed into place), after writing what it was about to do to ``<dir>/killed_at.txt``;
- ``["external", n]``: this driver SIGKILLs the child from outside once the stores hold at least n done rows (the
  child sleeps 20 ms per shard, 0.5 s once n rows are written, so that the kill lands mid-run even on a busy
  machine).

``damage`` (optional, applied before the child starts) lists ``[op, glob, arg]`` edits of files under ``dir``:
``flip`` xors the byte at offset ``arg`` (negative: from the end) with 0x40, ``truncate`` drops the last ``arg``
bytes, ``write`` replaces the content with the text ``arg``.

The exit of each child (``{"signal": 9}`` or ``{"code": 0}``) goes to ``<dir>/exit-<step>.json``; after a kill,
``<dir>/killed.json`` records where it died and what the stores held. Forking one warm process keeps a dozen stage
runs inside the test's time budget (a cold import of the stage takes several seconds).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import great_expectations  # noqa: F401 - imported lazily by the tables' contract checks: warm it once for all children
import numpy as np
import torch
import torch._dynamo  # likewise for the first torch.func call
from mlflow.store.tracking import sqlalchemy_store  # noqa: F401 - likewise for the first MLflow call

import curation.reports  # noqa: F401 - likewise for the run summary at the end of a stage
from curation.gradients import store as store_module
from curation.stages import compute_gradients


def _die(workdir: Path, what: str) -> None:
    (workdir / "killed_at.txt").write_text(what + "\n", encoding="utf-8")
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(workdir: Path, kind: str, at: int) -> None:
    count = {"n": 0}
    if kind == "flush":
        original_flush = np.memmap.flush

        def flush(self: np.memmap) -> None:
            count["n"] += 1
            if count["n"] == at:
                _die(workdir, f"before flush #{at} of {os.path.relpath(str(self.filename), workdir)}")
            original_flush(self)

        np.memmap.flush = flush
    elif kind == "replace":
        original_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            count["n"] += os.path.abspath(dst).startswith(str(workdir / "store"))  # the stores' renames only
            if count["n"] == at:
                _die(workdir, f"before rename #{at} of {Path(src).name} -> {os.path.relpath(dst, workdir)}")
            return original_replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif kind == "external":
        original_write = store_module.GradientStore.write

        def slow_write(self, ckpt, start, grads, *args, **kwargs):  # past the kill threshold: slow enough to die
            time.sleep(0.02 if count["n"] < at else 0.5)
            count["n"] += len(grads)
            return original_write(self, ckpt, start, grads, *args, **kwargs)

        store_module.GradientStore.write = slow_write


def _done_rows(workdir: Path) -> int:
    total = 0
    for path in workdir.glob("store/*/*/ckpt=*/done.npy"):
        try:
            total += int(np.load(path, mmap_mode="r").sum())
        except (ValueError, OSError):
            pass
    return total


def _store_files(workdir: Path) -> list[str]:
    store = workdir / "store"
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) if store.is_dir() else []


def _damage(workdir: Path, edits: list) -> None:
    for op, pattern, arg in edits:
        for path in sorted(workdir.glob(pattern)):
            raw = bytearray(path.read_bytes())
            if op == "flip":
                raw[arg] ^= 0x40
            elif op == "truncate":
                del raw[len(raw) - arg :]
            elif op == "write":
                raw = bytearray(arg.encode())
            path.write_bytes(bytes(raw))


def _child(workdir: Path, kill: list | None, step: int) -> None:
    code = 1
    try:
        err = os.open(workdir / f"stderr-{step}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        os.chdir(workdir)
        torch.set_num_threads(1)
        if kill:
            _install_kill(workdir, kill[0], int(kill[1]))
        compute_gradients.run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report anything to the test, never return into the driver
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _external_kill(pid: int, workdir: Path, rows: int) -> None:
    deadline = time.monotonic() + 120
    while _done_rows(workdir) < rows and time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            raise SystemExit(f"{workdir}: the run finished before the external kill")
        time.sleep(0.001)
    (workdir / "killed_at.txt").write_text(f"external kill after {_done_rows(workdir)} done rows\n")
    os.kill(pid, signal.SIGKILL)


def main(plan_path: str) -> None:
    for step, run in enumerate(json.loads(Path(plan_path).read_text(encoding="utf-8"))):
        workdir, kill = Path(run["dir"]), run.get("kill")
        _damage(workdir, run.get("damage", []))
        pid = os.fork()
        if pid == 0:
            _child(workdir, kill, step)
        if kill and kill[0] == "external":
            _external_kill(pid, workdir, int(kill[1]))
        _, status = os.waitpid(pid, 0)
        result = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"code": os.WEXITSTATUS(status)}
        (workdir / f"exit-{step}.json").write_text(json.dumps(result), encoding="utf-8")
        if kill:
            (workdir / "killed.json").write_text(json.dumps({
                "at": (workdir / "killed_at.txt").read_text(encoding="utf-8").strip()
                if (workdir / "killed_at.txt").exists() else "not killed",
                "done_rows": _done_rows(workdir), "files": _store_files(workdir)}), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
