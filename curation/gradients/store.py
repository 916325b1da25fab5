"""``GradientStore``: resumable, memory-mapped per-checkpoint gradient features with a metadata guard.

Layout under the store root::

    metadata.json                 what the features were computed from (adapter, model config, data digest,
                                  projection, target, rows, width); any difference on reopen is refused
    ckpt=<id>/grads.npy           float32 [n_rows, dim]   projected per-example gradients
    ckpt=<id>/values.npy          float32 [n_rows]        the differentiated output (loss, measurement, margin)
    ckpt=<id>/digests.npy         uint64  [n_rows]        blake2b-64 of each row's gradient and value bytes
    ckpt=<id>/done.npy            bool    [n_rows]        rows whose features are written and flushed

Writes are addressed by row index and idempotent: rows are written and flushed, then their digests, and only then
are they marked done, so a process killed at any point leaves only rows that are either complete or still
pending, and ``pending`` tells a resumed run exactly what is left. Recomputing a row writes the same bytes, which
is what makes resume bit-identical.

Nothing on disk is trusted on the word of ``done.npy`` alone: the first time a store object looks at a checkpoint
it re-hashes every row marked done, and rows whose bytes no longer match their digest are pending again. A file
that cannot be mapped with its expected shape (truncated, wrong header) drops the whole checkpoint, which is then
recomputed. Each such repair is logged as a warning naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from curation.errors import StoreMismatchError
from curation.io.atomic import write_json

METADATA = "metadata.json"
log = logging.getLogger(__name__)


def row_digests(grads: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``uint64`` blake2b-64 of each row's float32 gradient bytes followed by its float32 value bytes."""
    grads = np.ascontiguousarray(grads, dtype=np.float32)
    values = np.ascontiguousarray(values, dtype=np.float32)
    out = np.empty(len(grads), dtype=np.uint64)
    for i in range(len(grads)):
        h = hashlib.blake2b(grads[i].tobytes(), digest_size=8)
        h.update(values[i].tobytes())
        out[i] = int.from_bytes(h.digest(), "little")
    return out


class GradientStore:
    """Per-checkpoint feature arrays of one table (rows in table order) under ``root``."""

    def __init__(self, root: str | os.PathLike[str], metadata: Mapping[str, Any], *, n_rows: int, dim: int) -> None:
        self.root = Path(root)
        self.n_rows = int(n_rows)
        self.dim = int(dim)
        self.metadata = json.loads(json.dumps({**metadata, "n_rows": self.n_rows, "dim": self.dim}, default=str))
        self._verified: dict[str, np.ndarray] = {}
        self._guard()

    def _guard(self) -> None:
        path = self.root / METADATA
        if path.exists():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                raise StoreMismatchError(f"{path}: unreadable store metadata ({exc}); delete this store") from None
            if stored != self.metadata:
                keys = sorted(set(stored) | set(self.metadata))
                diff = next(k for k in keys if stored.get(k) != self.metadata.get(k))
                raise StoreMismatchError(
                    f"{path}: store was written with {diff}={stored.get(diff)!r}, this run has "
                    f"{self.metadata.get(diff)!r}; use a new store folder or delete this one"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in sorted(self.root.glob("ckpt=*")):  # features without metadata cannot be vouched for
            log.warning("%s: features without %s; discarding them", stale, METADATA)
            shutil.rmtree(stale)
        write_json(self.metadata, path)

    def _dir(self, ckpt: str) -> Path:
        if not ckpt or "/" in ckpt or ckpt.startswith("."):
            raise ValueError(f"invalid checkpoint id {ckpt!r}")
        return self.root / f"ckpt={ckpt}"

    def _shapes(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return {"grads": ((self.n_rows, self.dim), np.float32), "values": ((self.n_rows,), np.float32),
                "digests": ((self.n_rows,), np.uint64), "done": ((self.n_rows,), np.bool_)}

    def _open(self, ckpt: str, name: str, mode: str) -> np.memmap:
        shape, dtype = self._shapes()[name]
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
        try:
            arr = open_memmap(path, mode=mode)
        except (ValueError, OSError) as exc:  # truncated file, damaged header
            raise StoreMismatchError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
        if arr.shape != shape or arr.dtype != np.dtype(dtype):
            raise StoreMismatchError(f"{path}: has shape {arr.shape} {arr.dtype}, expected {shape} {np.dtype(dtype)}")
        return arr

    def done_mask(self, ckpt: str) -> np.ndarray:
        """Copy of the rows of one checkpoint that are marked done and still match their digests."""
        if ckpt not in self._verified:
            self._verified[ckpt] = self._verify(ckpt)
        return self._verified[ckpt].copy()

    def _verify(self, ckpt: str) -> np.ndarray:
        """Done rows whose bytes match their digests; a checkpoint with an unreadable file is dropped."""
        folder = self._dir(ckpt)
        if not (folder / "done.npy").exists():
            return np.zeros(self.n_rows, dtype=bool)
        try:
            done = np.array(self._open(ckpt, "done", "r"))
            if not done.any():
                return done
            rows = np.flatnonzero(done)
            grads, values = self._open(ckpt, "grads", "r"), self._open(ckpt, "values", "r")
            stored = np.asarray(self._open(ckpt, "digests", "r"))[rows]
        except StoreMismatchError as exc:
            log.warning("%s; recomputing checkpoint %s", exc, ckpt)
            shutil.rmtree(folder)
            return np.zeros(self.n_rows, dtype=bool)
        bad = rows[row_digests(grads[rows], values[rows]) != stored]
        if bad.size:
            log.warning("%s: %d rows do not match their digests (first row %d); recomputing them",
                        folder / "grads.npy", bad.size, bad[0])
            done[bad] = False
        return done

    def pending(self, ckpt: str) -> np.ndarray:
        """Row indices of ``ckpt`` that are not written yet (ascending)."""
        return np.flatnonzero(~self.done_mask(ckpt))

    def is_complete(self, ckpt: str) -> bool:
        return bool(self.done_mask(ckpt).all())

    def write(self, ckpt: str, start: int, grads: np.ndarray, values: np.ndarray) -> None:
        """Write rows ``start .. start+len(grads)`` of ``ckpt``, flush, record their digests, then mark them done."""
        grads = np.asarray(grads, dtype=np.float32)
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        stop = start + grads.shape[0]
        if start < 0 or stop > self.n_rows or grads.ndim != 2 or grads.shape[1] != self.dim or len(values) != len(grads):
            raise ValueError(f"rows {start}:{stop} of width {grads.shape[-1]} do not fit store [{self.n_rows}, {self.dim}]")
        mask = self.done_mask(ckpt)  # verifies (and if need be drops) what is on disk before adding to it
        g, v = self._open(ckpt, "grads", "r+"), self._open(ckpt, "values", "r+")
        g[start:stop] = grads
        v[start:stop] = values
        g.flush()
        v.flush()
        d = self._open(ckpt, "digests", "r+")
        d[start:stop] = row_digests(grads, values)
        d.flush()
        done = self._open(ckpt, "done", "r+")
        done[start:stop] = True
        done.flush()
        mask[start:stop] = True
        self._verified[ckpt] = mask

    def grads(self, ckpt: str) -> np.memmap:
        """Read-only ``[n_rows, dim]`` features of a complete checkpoint."""
        self._require_complete(ckpt)
        return self._open(ckpt, "grads", "r")

    def values(self, ckpt: str) -> np.memmap:
        """Read-only ``[n_rows]`` output values of a complete checkpoint."""
        self._require_complete(ckpt)
        return self._open(ckpt, "values", "r")

    def _require_complete(self, ckpt: str) -> None:
        left = self.pending(ckpt)
        if left.size:
            raise StoreMismatchError(
                f"{self._dir(ckpt)}: {left.size} of {self.n_rows} rows not computed yet (first pending row {left[0]})"
            )
