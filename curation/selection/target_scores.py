"""What every target-directed selection scorer (BETR, BM25, Quad) returns: one result, two views.

- ``scores``: the Selector's input (``curation.selection.selector``): ``example_id, score`` with **higher = more
  wanted**, in pool order, plus the method's extras;
- ``issues`` + ``summary``: the ``off_target`` issue table of the output contract (``off_target_score`` = minus
  the selection score, so higher = less like the target) and its one-row summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curation.errors import DataContractError
from curation.issue_tables import dataset_summary, issue_table

ISSUE = "off_target"


@dataclass(frozen=True)
class SelectionScores:
    """A selection scorer's output (see the module docstring)."""

    scores: pl.DataFrame
    issues: pl.DataFrame
    summary: pl.DataFrame


def selection_scores(
    example_ids: Sequence[Any],
    wanted: np.ndarray,
    *,
    method: str,
    keep_fraction: float,
    extras: dict[str, Sequence[Any]] | None = None,
    flagged: np.ndarray | None = None,
    **figures: Any,
) -> SelectionScores:
    """Wrap per-row "wanted" scores: Selector input, ``off_target`` issue table (top ``1 - keep_fraction`` by
    off-target score flagged, unless ``flagged`` gives the method's own decision) and summary with ``figures``."""
    wanted = np.asarray(wanted, dtype=np.float64)
    ids = list(example_ids)
    extras = {k: np.asarray(v) if isinstance(v, np.ndarray) else list(v) for k, v in (extras or {}).items()}
    if flagged is None:
        issues = issue_table(ids, -wanted, issue=ISSUE, fraction=1.0 - keep_fraction, extras=extras)
    else:
        issues = issue_table(ids, -wanted, issue=ISSUE, flagged=flagged, extras=extras)
    scores = pl.DataFrame({"example_id": ids, "score": wanted, **extras})
    return SelectionScores(scores, issues, dataset_summary(issues, issue=ISSUE, method=method, **figures))


def check_text_tables(pool: pl.DataFrame, target: pl.DataFrame, *, method: str) -> None:
    """One-line errors for a pool without ``example_id``/``text``, a target without ``text``, or an empty table."""
    for name, frame, columns in (("pool", pool, ("example_id", "text")), ("target", target, ("text",))):
        for column in columns:
            if column not in frame.columns:
                raise DataContractError(f"{method} {name} table: missing column '{column}' "
                                        f"(columns: {', '.join(frame.columns)})")
        if frame.height == 0:
            raise DataContractError(f"{method} {name} table: no rows")
    if pool["example_id"].n_unique() != pool.height:
        row = int(np.flatnonzero(pool["example_id"].is_duplicated().to_numpy())[1])
        raise DataContractError(f"{method} pool table: row {row}: duplicate example_id {pool['example_id'][row]!r}")
