"""Apply a selection (``example_id, keep, reason``) to a dataset: write the filtered table and its manifest.

The filtered table keeps the input's schema and row order (only dropped rows disappear). ``manifest.json`` says
what it was made from and why rows are missing: the source path and digest, counts kept / dropped / flagged by
reason, the selector and its config hash, so a downstream stage or a person can audit the filter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from curation.config import config_hash, to_dict
from curation.errors import DataContractError
from curation.io import file_digest, read_table, write_json, write_parquet


def write_filtered(
    source: str | os.PathLike[str],
    selection: pl.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    selector: str,
    config: Any,
    filename: str = "filtered.parquet",
) -> dict[str, Any]:
    """Write ``out_dir/<filename>`` (kept rows, input schema) and ``out_dir/manifest.json``; return the manifest."""
    table = read_table(source)
    if "example_id" not in table.columns:
        raise DataContractError(f"{source}: missing column 'example_id'")
    decision = selection.select("example_id", "keep", "reason")
    if decision["example_id"].n_unique() != decision.height:
        raise DataContractError(f"selection for {source}: duplicate example_id")
    joined = table.select("example_id").with_row_index("_row").join(decision, on="example_id", how="left")
    missing = joined.filter(pl.col("keep").is_null())
    if missing.height:
        raise DataContractError(
            f"{source}: row {missing['_row'][0]}: example_id {missing['example_id'][0]!r} has no selection decision"
        )
    joined = joined.sort("_row")
    kept = table.filter(joined["keep"].to_numpy())
    out_dir = Path(out_dir)
    write_parquet(kept, out_dir / filename)
    counts = joined.group_by("keep", "reason").len().sort("reason")
    manifest = {
        "source": str(source),
        "source_digest": file_digest(source),
        "output": str(out_dir / filename),
        "selector": selector,
        "config": to_dict(config),
        "config_hash": config_hash(config),
        "rows_in": table.height,
        "kept": kept.height,
        "dropped": table.height - kept.height,
        "dropped_by_reason": {r: n for k, r, n in counts.iter_rows() if not k},
        "flagged_by_reason": {r: n for k, r, n in counts.iter_rows() if k and r != "kept"},
    }
    write_json(manifest, out_dir / "manifest.json")
    return manifest
