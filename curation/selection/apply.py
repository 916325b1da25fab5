"""Apply a selection (``example_id, keep, reason``) to a dataset: write the filtered table and its manifest.

The filtered table keeps the input's schema and row order (only dropped rows disappear). ``manifest.json`` says
what it was made from and why rows are missing: the source path and digest, counts kept / dropped / flagged by
reason, the selector and its config hash, so a downstream stage or a person can audit the filter.

The source may be one table or several Parquet shards (read one at a time, so only the kept rows are ever held
together). ``write_selection`` also writes the full decision (``selection.parquet``: ids, scores, keep, reason,
rank) beside the filtered table and records its digest; ``inputs`` (e.g. a selection target) and ``extra`` (e.g.
the budget) add their digests and fields to the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from curation.config import config_hash, to_dict
from curation.errors import DataContractError
from curation.io import file_digest, read_table, write_json, write_parquet


def write_filtered(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    selection: pl.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    selector: str,
    config: Any,
    filename: str = "filtered.parquet",
    write_selection: bool = False,
    inputs: Mapping[str, str | os.PathLike[str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/<filename>`` (kept rows, input schema) and ``out_dir/manifest.json``; return the manifest."""
    shards = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    decision = selection.select("example_id", "keep", "reason")
    if decision["example_id"].n_unique() != decision.height:
        raise DataContractError(f"selection for {shards[0]}: duplicate example_id")
    kept_parts, decided = [], []
    for shard in shards:
        table = read_table(shard)
        if "example_id" not in table.columns:
            raise DataContractError(f"{shard}: missing column 'example_id'")
        joined = table.select("example_id").with_row_index("_row").join(decision, on="example_id", how="left")
        missing = joined.filter(pl.col("keep").is_null())
        if missing.height:
            raise DataContractError(f"{shard}: row {missing['_row'][0]}: example_id {missing['example_id'][0]!r} "
                                    f"has no selection decision")
        joined = joined.sort("_row")
        kept_parts.append(table.filter(joined["keep"].to_numpy()))
        decided.append(joined.select("keep", "reason"))
    kept = pl.concat(kept_parts, how="vertical_relaxed")
    out_dir = Path(out_dir)
    write_parquet(kept, out_dir / filename)
    all_decided = pl.concat(decided)
    counts = all_decided.group_by("keep", "reason").len().sort("reason")
    single = len(shards) == 1
    manifest = {
        "source": str(shards[0]) if single else [str(s) for s in shards],
        "source_digest": file_digest(shards[0]) if single else [file_digest(s) for s in shards],
        "output": str(out_dir / filename),
        "selector": selector,
        "config": to_dict(config),
        "config_hash": config_hash(config),
        "rows_in": all_decided.height,
        "kept": kept.height,
        "dropped": all_decided.height - kept.height,
        "dropped_by_reason": {r: n for k, r, n in counts.iter_rows() if not k},
        "flagged_by_reason": {r: n for k, r, n in counts.iter_rows() if k and r != "kept"},
    }
    if write_selection:
        write_parquet(selection, out_dir / "selection.parquet")
        manifest["selection"] = str(out_dir / "selection.parquet")
        manifest["selection_digest"] = file_digest(out_dir / "selection.parquet")
    if inputs:
        manifest["inputs"] = {name: {"path": str(path), "digest": file_digest(path)} for name, path in inputs.items()}
    manifest.update(extra or {})
    write_json(manifest, out_dir / "manifest.json")
    return manifest
