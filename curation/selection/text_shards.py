"""Split a text table into shards that a worker can read on its own, so a pool is processed with bounded memory.

A source is an in-memory polars frame, one Parquet file, a folder of ``*.parquet`` files, or a list of files.
Parquet files are cut along row groups into shards of about ``shard_rows`` rows (a worker reads only its row
groups and only the needed columns); a frame is cut into row slices. Shards keep the source's row order, so
results concatenated by shard index line up with the rows as a reader of the files would see them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from curation.errors import DataContractError

TextSource = pl.DataFrame | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class Shard:
    """Rows of one Parquet file (``row_groups`` of ``path``) or an in-memory slice (``frame``); ``rows`` of them."""

    path: str = ""
    row_groups: tuple[int, ...] = ()
    frame: pl.DataFrame | None = None
    rows: int = 0

    def read(self, columns: Sequence[str]) -> pl.DataFrame:
        """The shard's rows, only ``columns`` (a missing one is a one-line error naming the file)."""
        if self.frame is not None:
            return self.frame.select(columns)
        file = pq.ParquetFile(self.path)
        missing = [c for c in columns if c not in file.schema_arrow.names]
        if missing:
            raise DataContractError(f"{self.path}: missing column '{missing[0]}'")
        return pl.from_arrow(file.read_row_groups(list(self.row_groups), columns=list(columns)))


def source_files(source: TextSource) -> list[Path]:
    """The Parquet files of a path / folder / list source (empty for a frame)."""
    if isinstance(source, pl.DataFrame):
        return []
    paths = [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(p) for p in source]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            if not found:
                raise DataContractError(f"{path}: folder holds no *.parquet shards")
            files += found
        elif path.exists():
            if path.suffix != ".parquet":
                raise DataContractError(f"{path}: expected a Parquet file (.parquet)")
            files.append(path)
        else:
            raise DataContractError(f"{path}: file not found")
    return files


def shards(source: TextSource, *, shard_rows: int) -> list[Shard]:
    """Cut ``source`` into shards of about ``shard_rows`` rows, in row order."""
    if isinstance(source, pl.DataFrame):
        return [Shard(frame=source.slice(start, shard_rows), rows=min(shard_rows, source.height - start))
                for start in range(0, source.height, shard_rows)]
    out: list[Shard] = []
    for path in source_files(source):
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise DataContractError(f"{path}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
        group: list[int] = []
        rows = 0
        for index in range(meta.num_row_groups):
            group.append(index)
            rows += meta.row_group(index).num_rows
            if rows >= shard_rows:
                out.append(Shard(str(path), tuple(group), rows=rows))
                group, rows = [], 0
        if group:
            out.append(Shard(str(path), tuple(group), rows=rows))
    return out
