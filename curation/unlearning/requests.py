"""Forget requests: a table of training ``example_id``s to delete, validated against the training table.

A request that names an unknown id, repeats an id, has a null id or is empty would make every downstream number
meaningless (a "forgotten" example that was never trained on looks perfectly forgotten), so it is refused with a
one-line error naming the file and the offending row.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from curation.errors import DataContractError
from curation.io import read_table

ID = "example_id"


def validate_request(request: pl.DataFrame, train_ids: pl.Series, *, where: str) -> pl.DataFrame:
    """Return ``request`` (column ``example_id`` only) after checking it against ``train_ids``.

    ``where`` names the request file in error messages; rows are reported 1-based in file order.
    """
    if ID not in request.columns:
        raise DataContractError(f"{where}: missing column '{ID}'")
    if request.height == 0:
        raise DataContractError(f"{where}: forget request is empty (no {ID} rows)")
    ids = request[ID]
    if ids.dtype != train_ids.dtype:
        if not (ids.dtype.is_integer() and train_ids.dtype.is_integer()):
            raise DataContractError(
                f"{where}: column '{ID}' has dtype {ids.dtype}, the training table uses {train_ids.dtype}"
            )
        ids = ids.cast(train_ids.dtype)
    nulls = ids.is_null()
    if nulls.any():
        raise DataContractError(f"{where}: row {int(nulls.arg_true()[0]) + 1}: {ID} is null")
    repeated = ~ids.is_first_distinct()
    if repeated.any():
        row = int(repeated.arg_true()[0])
        raise DataContractError(f"{where}: row {row + 1}: duplicate {ID} {ids[row]!r}")
    unknown = ~ids.is_in(train_ids.implode())
    if unknown.any():
        row = int(unknown.arg_true()[0])
        raise DataContractError(f"{where}: row {row + 1}: {ID} {ids[row]!r} is not in the training table")
    return pl.DataFrame({ID: ids})


def read_request(path: str | os.PathLike[str], train: pl.DataFrame) -> pl.DataFrame:
    """Read a forget request (Parquet / JSONL / CSV with an ``example_id`` column) and validate it."""
    if ID not in train.columns:
        raise DataContractError(f"training table has no '{ID}' column")
    return validate_request(read_table(path), train[ID], where=str(Path(path)))


def split_forget_retain(train: pl.DataFrame, request: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(forget, retain)`` rows of ``train``, each in training-table order."""
    in_request = train[ID].is_in(request[ID].implode())
    return train.filter(in_request), train.filter(~in_request)


def sample_request(train: pl.DataFrame, size: int, *, seed: int) -> pl.DataFrame:
    """A seeded uniform sample of ``size`` training ids (demo and benchmark requests)."""
    if not 0 < size < train.height:
        raise DataContractError(f"forget request size must be in 1..{train.height - 1}, got {size}")
    rows = np.sort(np.random.default_rng(seed).choice(train.height, size=size, replace=False))
    return pl.DataFrame({ID: train[ID].gather(rows.tolist())})
