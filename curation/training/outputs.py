"""Write a training run's outputs into one folder, atomically: checkpoints, manifest, positions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl

from curation.io.atomic import atomic_path
from curation.training.loop import TrainResult

MANIFEST = "checkpoints.json"
POSITIONS = "positions.parquet"


def train_into(
    out_dir: str | Path, run: Callable[[Path], TrainResult], *, source_digest: str, config_hash: str = ""
) -> TrainResult:
    """Call ``run(tmp_dir)`` and publish ``tmp_dir`` as ``out_dir`` only if it succeeds.

    The folder holds ``ckpt-*.safetensors``, ``checkpoints.json`` (file, step, learning rate; data digest; config hash) and
    ``positions.parquet`` (example_id, position, epoch), so the previous good checkpoints survive a failed run.
    """
    with atomic_path(out_dir, is_dir=True) as tmp:
        result = run(tmp)
        manifest = {"checkpoints": result.checkpoints, "train_data_digest": source_digest, "config_hash": config_hash}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        result.positions.write_parquet(tmp / POSITIONS)
    return result


def read_manifest(out_dir: str | Path) -> list[dict]:
    """Checkpoint entries with absolute ``path`` added, in step order."""
    out_dir = Path(out_dir)
    data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    return [{**c, "path": str(out_dir / c["file"])} for c in sorted(data["checkpoints"], key=lambda c: c["step"])]


def read_positions(out_dir: str | Path) -> pl.DataFrame:
    """The training positions written beside the checkpoints."""
    return pl.read_parquet(Path(out_dir) / POSITIONS)
