"""One selection run, shared by ``curate select`` and the ``select_data`` stage: a registered selection scorer
scores a pool against a target, the budget Selector keeps a set, and the outputs are written.

Outputs in ``out_dir``: ``filtered.parquet`` (kept pool rows, pool schema and order), ``selection.parquet``
(every pool row: ``example_id, keep, reason, score, rank``), ``manifest.json`` (pool and target paths with
digests, scorer and selector configs, budget, counts by reason, KL reduction), and the output contract's pair
``not_selected_issues.parquet`` + ``summary.parquet``.

Scorers in ``curation.selection_scorers`` implement ``score(pool, target)`` returning ``example_id, score`` (higher
= more wanted; optional ``eligible``) in pool order, or an object whose ``scores`` attribute is that frame. A
scorer whose class sets ``streams = True`` (DSIR) receives the pool as its Parquet files and reads them shard by
shard; the others receive it as one frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from curation.config import to_dict
from curation.errors import ConfigError, DataContractError
from curation.executors import ExecutorConfig
from curation.io import read_table, write_parquet
from curation.plugins import MethodSpec, build_method
from curation.selection.apply import write_filtered
from curation.selection.dsir import DSIRConfig, selection_kl_reduction
from curation.selection.selector import Selector, SelectorConfig, selection_issues
from curation.selection.text_shards import shards, source_files

GROUP = "curation.selection_scorers"
DEDUP_KEY, WORDS = "_dedup_key", "_words"


@dataclass(frozen=True)
class SelectionRun:
    """What a run wrote and measured."""

    manifest: dict[str, Any]
    selection: pl.DataFrame
    summary: pl.DataFrame


def read_target(path: str | os.PathLike[str], where: Mapping[str, str], text_column: str) -> pl.DataFrame:
    """The target table's text rows, restricted to rows whose columns equal ``where`` (e.g. ``domain: legal``)."""
    table = read_table(path)
    for column, value in where.items():
        if column not in table.columns:
            raise DataContractError(f"{path}: target filter column '{column}' not found "
                                    f"(columns: {', '.join(table.columns)})")
        table = table.filter(pl.col(column).cast(pl.Utf8) == str(value))
    if text_column not in table.columns:
        raise DataContractError(f"{path}: missing column '{text_column}'")
    if table.height == 0:
        raise DataContractError(f"{path}: the target is empty" + (f" after filter {dict(where)}" if where else ""))
    return table.select(text_column)


def run_selection(pool: str | os.PathLike[str], target: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                  scorer: MethodSpec | str | dict[str, Any], selector: SelectorConfig,
                  target_filter: Mapping[str, str] | None = None, kl_reduction: bool = True) -> SelectionRun:
    """Score ``pool`` (Parquet file or folder of shards) against ``target``, select under ``selector``'s budget and
    write the outputs listed in the module docstring to ``out_dir``."""
    from curation.selection.run_targeted import METHODS as TARGETED

    spec = MethodSpec.parse(scorer, where="scorer")
    if spec.name in TARGETED:
        raise ConfigError(f"scorer '{spec.name}' reads a model: run curate select-targeted --method {spec.name} "
                          f"--checkpoints ... (or the select_targeted stage)")
    method = build_method(GROUP, scorer, where="scorer")
    files = source_files(pool)
    text_column = getattr(method.config, "text_column", selector.text_column)
    target_frame = read_target(target, target_filter or {}, text_column)
    needed = ["example_id"] + sorted({c for c in (selector.text_column if selector.dedup else "",
                                                  selector.group_column, selector.token_column,
                                                  selector.text_column if selector.budget == "tokens" else "")
                                      if c})
    for file in files:
        try:
            names = pq.read_schema(file).names
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise DataContractError(f"{file}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
        missing = [c for c in dict.fromkeys([*needed, text_column]) if c not in names]
        if missing:
            raise DataContractError(f"{file}: missing column '{missing[0]}' (columns: {', '.join(names)})")
    columns, row_selector = _selector_columns(files, needed, selector)
    pool_arg = files if getattr(type(method), "streams", False) else pl.concat(
        [read_table(f) for f in files], how="vertical_relaxed")
    result = method.score(pool_arg, target_frame)
    scores = getattr(result, "scores", result)
    scores = scores.select([c for c in ("example_id", "score", "eligible") if c in scores.columns])
    if not scores["example_id"].equals(columns["example_id"]):
        raise DataContractError(f"scorer '{spec.name}': scores are not in pool order")
    frame = scores.hstack(columns.drop("example_id"))
    selection = Selector(row_selector).select(frame, where=f"select ({spec.name})")
    keep = selection["keep"].to_numpy()
    figures: dict[str, Any] = {"kept": int(keep.sum()), "pool_rows": len(keep)}
    if kl_reduction:
        executor = getattr(method.config, "executor", ExecutorConfig())  # where the scorer ran its shards
        figures["kl_reduction"] = selection_kl_reduction(files, target_frame, keep, text_column=text_column,
                                                         config=DSIRConfig(executor=executor))
    out = Path(out_dir)
    manifest = write_filtered(
        [str(f) for f in files] if len(files) > 1 else str(files[0]), selection, out, selector=Selector.name,
        config=selector, write_selection=True, inputs={"target": target},
        extra={"scorer": {"name": spec.name, "options": to_dict(method.config)},
               "budget": {"kind": selector.budget, "value": selector.value, "method": selector.method,
                          "seed": selector.seed},
               **figures})
    issues, summary = selection_issues(selection, method=spec.name, **{k: float(v) for k, v in figures.items()})
    write_parquet(issues, out / "not_selected_issues.parquet")
    write_parquet(summary, out / "summary.parquet")
    return SelectionRun(manifest, selection, summary)


def _selector_columns(files: list[Path], needed: list[str], selector: SelectorConfig,
                      shard_rows: int = 100_000) -> tuple[pl.DataFrame, SelectorConfig]:
    """The per-row columns the Selector needs, read shard by shard without keeping the pool's text: the text
    becomes a 128-bit dedup key (two seeded 64-bit hashes) and, for a token budget without a token column, a
    word count. Returns the columns and the Selector config that reads them."""
    text = selector.text_column
    derive = []
    if selector.dedup:
        derive.append(pl.concat_str(pl.col(text).hash(seed=0).cast(pl.Utf8), pl.col(text).hash(seed=1).cast(pl.Utf8),
                                    separator=":").alias(DEDUP_KEY))
    if selector.budget == "tokens" and not selector.token_column:
        derive.append(pl.col(text).fill_null("").str.count_matches(r"\S+").alias(WORDS))
    keep = [c for c in needed if c != text]
    parts = [shard.read(needed).select(*keep, *derive) for shard in shards(files, shard_rows=shard_rows)]
    if not parts:
        raise DataContractError(f"{files[0]}: the pool is empty")
    config = replace(selector, text_column=DEDUP_KEY if selector.dedup else selector.text_column,
                     token_column=selector.token_column or (WORDS if selector.budget == "tokens" else ""))
    return pl.concat(parts, how="vertical_relaxed"), config
