"""The output contract shared by every per-example method: one issue table and one dataset summary.

Every method that judges individual examples (label errors from self-influence, GBDT influence, selection
scores, difficulty scores, ...) writes the same two frames, so a user reads any result the same way and a
downstream tool can join them:

- **issue table**, one row per example in input order: ``example_id``, ``<issue>_score`` (float; higher = stronger
  evidence of the issue), ``is_<issue>_issue`` (bool; the method's decision), ``<issue>_rank`` (1 = the example
  most likely to have the issue; ties broken by input order) -- plus any method extras named ``<issue>_<what>``.
- **dataset summary**, one row: ``issue``, ``method``, ``n_examples``, ``n_issues``, ``issue_rate``,
  ``mean_score``, ``max_score`` and any method extras.

``<issue>`` is a short snake_case noun: ``label``, ``outlier``, ``low_quality``, ``off_target``, ... The names follow
cleanlab's Datalab (``is_label_issue``), but the score direction is ours: higher always means "more likely an
issue", so ranking and thresholding never need to know the method.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from curation.errors import DataContractError

_ISSUE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def issue_columns(issue: str) -> tuple[str, str, str]:
    """``(<issue>_score, is_<issue>_issue, <issue>_rank)`` for a valid issue name."""
    if not _ISSUE_NAME.match(issue):
        raise ValueError(f"issue name must be snake_case, got {issue!r}")
    return f"{issue}_score", f"is_{issue}_issue", f"{issue}_rank"


def issue_table(
    example_ids: Sequence[Any],
    scores: Sequence[float] | np.ndarray,
    *,
    issue: str,
    flagged: Sequence[bool] | np.ndarray | None = None,
    fraction: float | None = None,
    extras: dict[str, Sequence[Any]] | None = None,
) -> pl.DataFrame:
    """The issue table of one method.

    The decision is either given (``flagged``) or the top ``fraction`` by score (ceil, at least one example when
    ``fraction > 0``). Scores must be finite: a NaN would make the ranking meaningless, so it is an error naming
    the row and example.
    """
    score_col, flag_col, rank_col = issue_columns(issue)
    values = np.asarray(scores, dtype=np.float64)
    ids = list(example_ids)
    if values.shape != (len(ids),):
        raise ValueError(f"{issue} scores: {values.shape[0] if values.ndim else 0} scores for {len(ids)} examples")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataContractError(f"{issue} scores: row {bad[0]} (example_id {ids[bad[0]]!r}): score is not finite")
    order = np.lexsort((np.arange(len(values)), -values))  # descending score, then input order
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(1, len(values) + 1)
    if flagged is None:
        if fraction is None:
            raise ValueError("issue_table needs flagged or fraction")
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
        n_flag = int(np.ceil(fraction * len(values) - 1e-9))
        decision = rank <= n_flag
    else:
        decision = np.asarray(flagged, dtype=bool)
        if decision.shape != values.shape:
            raise ValueError(f"{issue}: {decision.shape[0]} decisions for {len(ids)} examples")
    columns: dict[str, Any] = {"example_id": ids, score_col: values, flag_col: decision, rank_col: rank}
    for name, column in (extras or {}).items():
        columns[name if name.startswith(f"{issue}_") else f"{issue}_{name}"] = list(column)
    return pl.DataFrame(columns)


def dataset_summary(table: pl.DataFrame, *, issue: str, method: str, **extras: Any) -> pl.DataFrame:
    """The one-row dataset summary of an issue table (``extras`` become further columns)."""
    check_issue_table(table, issue)
    score_col, flag_col, _ = issue_columns(issue)
    n = table.height
    n_issues = int(table[flag_col].sum())
    row = {
        "issue": issue,
        "method": method,
        "n_examples": n,
        "n_issues": n_issues,
        "issue_rate": n_issues / n if n else 0.0,
        "mean_score": float(table[score_col].mean()) if n else float("nan"),
        "max_score": float(table[score_col].max()) if n else float("nan"),
        **extras,
    }
    return pl.DataFrame([row])


def check_issue_table(table: pl.DataFrame, issue: str) -> None:
    """Raise ``DataContractError`` unless ``table`` follows the issue-table contract for ``issue``."""
    score_col, flag_col, rank_col = issue_columns(issue)
    for column in ("example_id", score_col, flag_col, rank_col):
        if column not in table.columns:
            raise DataContractError(f"{issue} issue table: missing column '{column}'")
    if table["example_id"].n_unique() != table.height:
        raise DataContractError(f"{issue} issue table: example_id is not unique")
    if table[flag_col].dtype != pl.Boolean:
        raise DataContractError(f"{issue} issue table: {flag_col} must be boolean, got {table[flag_col].dtype}")
    if sorted(table[rank_col].to_list()) != list(range(1, table.height + 1)):
        raise DataContractError(f"{issue} issue table: {rank_col} must be a permutation of 1..{table.height}")
