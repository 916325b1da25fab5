"""The tree-model path of ``curate influence`` and ``curate label-errors``: load the model, read and check the
tables, build the registered tree scorer and score."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curation.attribution.base import ScoreResult
from curation.errors import DataContractError
from curation.gbdt.loading import load_tree_model
from curation.gbdt.scorers import GROUP, TreeScoringContext
from curation.io import read_table
from curation.plugins import build_method, registered_names


def is_tree_method(method: str) -> bool:
    """Whether ``method`` is a registered tree influence method (BoostIn, TREX, LeafInfluence, plugins)."""
    return method in registered_names(GROUP)


def read_rows(path: str, *, what: str) -> pl.DataFrame:
    """A table with a unique, non-null ``example_id``; errors name the file, column and first bad row."""
    frame = read_table(path)
    if frame.height == 0:
        raise DataContractError(f"{path}: no rows ({what} table)")
    if "example_id" not in frame.columns:
        raise DataContractError(f"{path}: missing column 'example_id' ({what} table)")
    ids = frame["example_id"]
    if ids.null_count():
        raise DataContractError(f"{path}, row {int(ids.is_null().arg_max())}, column 'example_id': null id")
    duplicated = ids.is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_max())
        raise DataContractError(f"{path}, row {row}, column 'example_id': duplicate id {ids[row]!r}")
    return frame


def tree_context(model_source: str, train_path: str, query_path: str | None) -> TreeScoringContext:
    """Context over the model at ``model_source`` (folder or ``models:/`` URI) and the two tables (the training
    table also serves as query table when ``query_path`` is None)."""
    adapter, model = load_tree_model(model_source)
    train = read_rows(train_path, what="training")
    queries = read_rows(query_path, what="query") if query_path else train.head(1)
    return TreeScoringContext(adapter=adapter, model=model, train=train, queries=queries,
                              sources=(train_path, query_path or train_path))


def tree_scores(method: str, options: dict[str, Any], context: TreeScoringContext) -> ScoreResult:
    """Train x query scores of the tree method ``method`` with ``options``."""
    return build_method(GROUP, {"name": method, "options": options}, where=method).score(context)


def tree_self_influence(method: str, options: dict[str, Any], context: TreeScoringContext) -> np.ndarray:
    """Self-influence of every training row under the tree method ``method``."""
    scorer = build_method(GROUP, {"name": method, "options": options}, where=method)
    return np.asarray(scorer.self_influence(context))
