"""Polars readers for Parquet, JSONL and CSV with errors that name the file and, for text formats, the line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from curation.errors import DataContractError

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def table_format(path: Path) -> str:
    """'parquet' | 'jsonl' | 'csv' from the file suffix, or a DataContractError naming the file."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataContractError(f"{path}: unsupported table format '{path.suffix}' (use .parquet, .jsonl or .csv)")
    return fmt


def read_table(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read a Parquet / JSONL / CSV table; ``columns`` restricts what is loaded (Parquet reads only those)."""
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise DataContractError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataContractError(f"{path}: file is empty")
    if fmt != "parquet":
        _check_utf8(path)
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path, columns=list(columns) if columns else None)
        elif fmt == "jsonl":
            frame = pl.read_ndjson(path)
        else:
            frame = pl.read_csv(path, infer_schema_length=10_000)
    except pl.exceptions.ColumnNotFoundError as exc:
        raise DataContractError(f"{path}: missing column ({_first_line(exc)})") from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataContractError(f"{path}: cannot read as {fmt}: {_first_line(exc)}") from None
    if columns and fmt != "parquet":
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataContractError(f"{path}: missing column '{missing[0]}'")
        frame = frame.select(columns)
    return frame


def _check_utf8(path: Path) -> None:
    """Raise naming the 1-based line of the first byte sequence that is not UTF-8."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataContractError(
                    f"{path}: line {lineno}: text is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
