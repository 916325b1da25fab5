"""Atomic writers: write to a temporary sibling, then ``os.replace`` it over the destination."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success rename it to ``dest``, on error delete it.

    The previous content of ``dest`` stays untouched until the new content is complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir and dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_parquet(frame: pl.DataFrame, dest: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as zstd Parquet atomically."""
    with atomic_path(dest) as tmp:
        frame.write_parquet(tmp, compression="zstd")
    return Path(dest)


def write_json(obj: Any, dest: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return Path(dest)


def write_text(text: str, dest: str | os.PathLike[str]) -> Path:
    """Write UTF-8 text atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)
