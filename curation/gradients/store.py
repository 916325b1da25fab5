"""``GradientStore``: resumable, memory-mapped per-checkpoint gradient features with a metadata guard.

Layout under the store root::

    metadata.json                 what the features were computed from (adapter, model config, data digest,
                                  projection, target, rows, width); any difference on reopen is refused
    ckpt=<id>/grads.npy           float32 [n_rows, dim]   projected per-example gradients
    ckpt=<id>/values.npy          float32 [n_rows]        the differentiated output (loss, measurement, margin)
    ckpt=<id>/done.npy            bool    [n_rows]        rows whose features are written and flushed

Writes are addressed by row index and idempotent: rows are written and flushed before they are marked done, so a
crash at any point leaves only rows that are either complete or still pending, and ``pending`` tells a resumed
run exactly what is left. Recomputing a row writes the same bytes, which is what makes resume bit-identical.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from curation.errors import StoreMismatchError
from curation.io.atomic import write_json

METADATA = "metadata.json"


class GradientStore:
    """Per-checkpoint feature arrays of one table (rows in table order) under ``root``."""

    def __init__(self, root: str | os.PathLike[str], metadata: Mapping[str, Any], *, n_rows: int, dim: int) -> None:
        self.root = Path(root)
        self.n_rows = int(n_rows)
        self.dim = int(dim)
        self.metadata = json.loads(json.dumps({**metadata, "n_rows": self.n_rows, "dim": self.dim}, default=str))
        self._guard()

    def _guard(self) -> None:
        path = self.root / METADATA
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored != self.metadata:
                keys = sorted(set(stored) | set(self.metadata))
                diff = next(k for k in keys if stored.get(k) != self.metadata.get(k))
                raise StoreMismatchError(
                    f"{path}: store was written with {diff}={stored.get(diff)!r}, this run has "
                    f"{self.metadata.get(diff)!r}; use a new store folder or delete this one"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.metadata, path)

    def _dir(self, ckpt: str) -> Path:
        if not ckpt or "/" in ckpt or ckpt.startswith("."):
            raise ValueError(f"invalid checkpoint id {ckpt!r}")
        return self.root / f"ckpt={ckpt}"

    def _open(self, ckpt: str, name: str, shape: tuple[int, ...], dtype: Any, mode: str) -> np.memmap:
        path = self._dir(ckpt) / f"{name}.npy"
        if not path.exists():
            if mode == "r":
                raise StoreMismatchError(f"{path}: missing; compute the gradients for checkpoint {ckpt} first")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.npy.tmp")
            arr = open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            arr.flush()
            del arr
            os.replace(tmp, path)
        arr = open_memmap(path, mode=mode)
        if arr.shape != shape or arr.dtype != np.dtype(dtype):
            raise StoreMismatchError(f"{path}: has shape {arr.shape} {arr.dtype}, expected {shape} {np.dtype(dtype)}")
        return arr

    def done_mask(self, ckpt: str) -> np.ndarray:
        """Copy of the done-mask of one checkpoint (all False if nothing was written yet)."""
        path = self._dir(ckpt) / "done.npy"
        if not path.exists():
            return np.zeros(self.n_rows, dtype=bool)
        return np.array(self._open(ckpt, "done", (self.n_rows,), np.bool_, "r"))

    def pending(self, ckpt: str) -> np.ndarray:
        """Row indices of ``ckpt`` that are not written yet (ascending)."""
        return np.flatnonzero(~self.done_mask(ckpt))

    def is_complete(self, ckpt: str) -> bool:
        return bool(self.done_mask(ckpt).all())

    def write(self, ckpt: str, start: int, grads: np.ndarray, values: np.ndarray) -> None:
        """Write rows ``start .. start+len(grads)`` of ``ckpt``, flush, then mark them done."""
        grads = np.asarray(grads, dtype=np.float32)
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        stop = start + grads.shape[0]
        if start < 0 or stop > self.n_rows or grads.ndim != 2 or grads.shape[1] != self.dim or len(values) != len(grads):
            raise ValueError(f"rows {start}:{stop} of width {grads.shape[-1]} do not fit store [{self.n_rows}, {self.dim}]")
        g = self._open(ckpt, "grads", (self.n_rows, self.dim), np.float32, "r+")
        v = self._open(ckpt, "values", (self.n_rows,), np.float32, "r+")
        g[start:stop] = grads
        v[start:stop] = values
        g.flush()
        v.flush()
        done = self._open(ckpt, "done", (self.n_rows,), np.bool_, "r+")
        done[start:stop] = True
        done.flush()

    def grads(self, ckpt: str) -> np.memmap:
        """Read-only ``[n_rows, dim]`` features of a complete checkpoint."""
        self._require_complete(ckpt)
        return self._open(ckpt, "grads", (self.n_rows, self.dim), np.float32, "r")

    def values(self, ckpt: str) -> np.memmap:
        """Read-only ``[n_rows]`` output values of a complete checkpoint."""
        self._require_complete(ckpt)
        return self._open(ckpt, "values", (self.n_rows,), np.float32, "r")

    def _require_complete(self, ckpt: str) -> None:
        left = self.pending(ckpt)
        if left.size:
            raise StoreMismatchError(
                f"{self._dir(ckpt)}: {left.size} of {self.n_rows} rows not computed yet (first pending row {left[0]})"
            )
