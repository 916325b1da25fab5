"""Run a contract against a table: cheap polars checks first, then the Great Expectations suite."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

import polars as pl

from curation.errors import DataContractError
from curation.io.tables import read_table
from curation.validation.contracts import EXPECTED, TableContract, dtype_matches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of a passed validation: row count and the GX statistics and per-expectation results."""

    source: str
    contract: str
    rows: int
    statistics: dict[str, Any]
    expectations: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate_table(
    path: str | os.PathLike[str], contract: TableContract, *, label_range: tuple[int, int] | None = None
) -> tuple[pl.DataFrame, ValidationReport]:
    """Read ``path`` and validate it; returns the frame and the report, or raises ``DataContractError``."""
    frame = read_table(path)
    return frame, validate_frame(frame, contract, source=str(path), label_range=label_range)


def validate_frame(
    frame: pl.DataFrame, contract: TableContract, *, source: str, label_range: tuple[int, int] | None = None
) -> ValidationReport:
    """Validate an in-memory frame; ``source`` names it in errors."""
    label_range = label_range or contract.label_range
    if frame.height == 0:
        raise DataContractError(f"{source}: table has no rows")
    for column in contract.required:
        if column not in frame.columns:
            raise DataContractError(f"{source}: missing required column '{column}' (contract '{contract.name}')")
    for column in frame.columns:
        kind = contract.kind_of(column)
        if kind and not dtype_matches(frame.schema[column], kind):
            raise DataContractError(
                f"{source}: column '{column}' has dtype {frame.schema[column]}, expected {EXPECTED[kind]}"
            )
    checked = [c for c in frame.columns if contract.kind_of(c)]
    suite_results = run_gx_suite(frame.select(checked), contract, label_range=label_range)
    failed = [r for r in suite_results["results"] if not r["success"]]
    if failed:
        raise DataContractError(describe_failure(frame, source, failed[0], label_range))
    return ValidationReport(
        source=source,
        contract=contract.name,
        rows=frame.height,
        statistics=suite_results["statistics"],
        expectations=suite_results["results"],
    )


def _expectations(frame: pl.DataFrame, contract: TableContract, label_range: tuple[int, int] | None) -> list:
    import great_expectations as gx

    exps: list = [gx.expectations.ExpectColumnValuesToBeUnique(column="example_id")]
    for column in frame.columns:
        if column in contract.required:
            exps.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=column))
    if "text" in frame.columns:
        exps.append(gx.expectations.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1))
    if label_range is not None and "label" in frame.columns:
        exps.append(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="label", min_value=label_range[0], max_value=label_range[1]
            )
        )
    return exps


def run_gx_suite(
    frame: pl.DataFrame, contract: TableContract, *, label_range: tuple[int, int] | None
) -> dict[str, Any]:
    """Build an ephemeral GX context and run the contract's suite on the frame (as pandas: GX has no polars)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        ctx.data_sources.add_pandas(name="curation")
        .add_dataframe_asset(name=contract.name)
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"curation_{contract.name}"))
    for exp in _expectations(frame, contract, label_range):
        suite.add_expectation(exp)
    pdf = frame.with_columns(
        [pl.col(c).list.len().alias(c) for c, t in frame.schema.items() if isinstance(t, (pl.List, pl.Array))]
    ).to_pandas()
    result = batch_def.get_batch(batch_parameters={"dataframe": pdf}).validate(suite)
    described = result.describe_dict()
    results = [
        {
            "expectation": r["expectation_type"],
            "column": r.get("kwargs", {}).get("column"),
            "success": r["success"],
            "unexpected_count": (r.get("result") or {}).get("unexpected_count"),
        }
        for r in described["expectations"]
    ]
    return {"statistics": described.get("statistics", {}), "results": results}


def describe_failure(
    frame: pl.DataFrame, source: str, failure: dict[str, Any], label_range: tuple[int, int] | None
) -> str:
    """One line naming the file, column, first bad row (0-based) and its example_id."""
    column, expectation = failure["column"], failure["expectation"]
    indexed = frame.with_row_index("_row")
    if expectation == "expect_column_values_to_be_unique":
        bad = indexed.filter(pl.col(column).is_duplicated())
        what = "duplicate value"
    elif expectation == "expect_column_values_to_not_be_null":
        bad = indexed.filter(pl.col(column).is_null())
        what = "null value"
    elif expectation == "expect_column_value_lengths_to_be_between":
        bad = indexed.filter(pl.col(column).str.len_chars() < 1)
        what = "empty text"
    elif expectation == "expect_column_values_to_be_between" and label_range is not None:
        bad = indexed.filter((pl.col(column) < label_range[0]) | (pl.col(column) > label_range[1]))
        what = f"value outside [{label_range[0]}, {label_range[1]}]"
    else:
        bad = indexed.head(0)
        what = "failed check"
    count = failure.get("unexpected_count")
    if bad.height:
        first = bad.row(0, named=True)
        ident = first.get("example_id")
        value = first.get(column)
        return (
            f"{source}: column '{column}', row {first['_row']} (example_id={ident!r}): {what} {value!r} "
            f"[{expectation}; {count if count is not None else bad.height} bad rows]"
        )
    return f"{source}: column '{column}': {what} [{expectation}]"
