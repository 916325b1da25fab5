"""Run a contract against a table: cheap polars checks first, then the Great Expectations suite.

The suite runs on a pandas view of the table in which a list column becomes its per-row length and every numeric
column gets a companion column counting its non-finite values (GX has no list or NaN-aware expectations), so
equal feature lengths and finite numbers are GX expectations like uniqueness, nulls and the label range. A failed
expectation is reported as one line naming the file, the column and the first bad row.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from curation.errors import ConfigError, DataContractError
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


@dataclass(frozen=True)
class Check:
    """One expectation of the suite: the GX column it runs on, the table column it is about, and how to find and
    describe the first bad row in polars when it fails."""

    expectation: Any
    gx_column: str
    column: str
    bad: Callable[[pl.DataFrame], pl.Series]  # boolean mask of failing rows
    what: Callable[[dict[str, Any]], str]  # description of one failing row


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
    if label_range is not None and label_range[1] <= label_range[0]:
        raise ConfigError(f"{source}: n_classes must be at least 2 (labels {label_range[0]}..{label_range[1]})")
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
    frame = frame.with_columns(  # fixed-width arrays are checked like lists
        [pl.col(c).cast(pl.List(t.inner)) for c, t in frame.schema.items() if isinstance(t, pl.Array)])
    checked = frame.select([c for c in frame.columns if contract.kind_of(c)])
    checks = _checks(checked, contract, label_range)
    suite_results = run_gx_suite(checked, contract, checks)
    failed = {r["gx_column"] + r["expectation"]: r for r in suite_results["results"] if not r["success"]}
    for check in checks:  # report the first failure in suite order (ids, nulls, lengths, finiteness, labels)
        failure = failed.get(check.gx_column + check.expectation.expectation_type)
        if failure:
            raise DataContractError(describe_failure(frame, source, check, failure.get("unexpected_count")))
    return ValidationReport(
        source=source,
        contract=contract.name,
        rows=frame.height,
        statistics=suite_results["statistics"],
        expectations=[{k: v for k, v in r.items() if k != "gx_column"} for r in suite_results["results"]],
    )


def _is_list(dtype: pl.DataType) -> bool:
    return isinstance(dtype, (pl.List, pl.Array))


def _nonfinite(frame: pl.DataFrame, column: str) -> pl.Series:
    """Per row, how many values of a numeric or list-of-numbers column are NaN or infinite (null stays null)."""
    col = pl.col(column)
    if _is_list(frame.schema[column]):
        expr = col.list.eval((~pl.element().cast(pl.Float64).is_finite()).cast(pl.Int64)).list.sum()
        return frame.select(pl.when(col.is_null()).then(None).otherwise(expr)).to_series()
    return frame.select((~col.cast(pl.Float64).is_finite()).cast(pl.Int64)).to_series()


def _first_nonfinite(row: dict[str, Any], column: str) -> str:
    values = row[column] if isinstance(row[column], list) else [row[column]]
    index = next(i for i, v in enumerate(values) if v is not None and not (float("-inf") < v < float("inf")))
    where = f" at index {index}" if isinstance(row[column], list) else ""
    return f"non-finite value {values[index]!r}{where}"


def _checks(frame: pl.DataFrame, contract: TableContract, label_range: tuple[int, int] | None) -> list[Check]:
    import great_expectations as gx

    def row_value(column: str, what: str) -> Callable[[dict[str, Any]], str]:
        return lambda row: f"{what} {row[column]!r}"

    checks = [Check(gx.expectations.ExpectColumnValuesToBeUnique(column="example_id"), "example_id", "example_id",
                    lambda f: f["example_id"].is_duplicated(), row_value("example_id", "duplicate value"))]
    for column in frame.columns:
        if column in contract.required:
            checks.append(Check(gx.expectations.ExpectColumnValuesToNotBeNull(column=column), column, column,
                                lambda f, c=column: f[c].is_null(), row_value(column, "null value")))
    if "text" in frame.columns:
        checks.append(Check(gx.expectations.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1), "text",
                            "text", lambda f: f["text"].str.len_chars() < 1, row_value("text", "empty text")))
    for column, dtype in frame.schema.items():
        if _is_list(dtype) and frame[column].null_count() < frame.height:
            lengths = frame[column].list.len()
            if contract.feature_length is not None:
                n, why = contract.feature_length, "the model's n_features"
            else:
                n, why = int(lengths.drop_nulls().mode().sort()[0]), "like most rows"
            checks.append(Check(
                gx.expectations.ExpectColumnValuesToBeBetween(column=column, min_value=n, max_value=n), column,
                column, lambda f, c=column, n=n: f[c].list.len() != n,
                lambda row, c=column, n=n, why=why: f"{len(row[c])} values, expected {n} ({why})"))
        if _is_list(dtype) or dtype.is_float():
            gx_column = f"{column}__nonfinite"
            checks.append(Check(
                gx.expectations.ExpectColumnValuesToBeBetween(column=gx_column, min_value=0, max_value=0), gx_column,
                column, lambda f, c=column: _nonfinite(f, c).fill_null(0) > 0,
                lambda row, c=column: _first_nonfinite(row, c)))
    if label_range is not None and "label" in frame.columns:
        lo, hi = label_range
        checks.append(Check(
            gx.expectations.ExpectColumnValuesToBeBetween(column="label", min_value=lo, max_value=hi), "label",
            "label", lambda f: (f["label"] < lo) | (f["label"] > hi), row_value("label", f"value outside [{lo}, {hi}]")))
    return checks


def run_gx_suite(frame: pl.DataFrame, contract: TableContract, checks: list[Check]) -> dict[str, Any]:
    """Build an ephemeral GX context and run the checks' suite on the frame (as pandas: GX has no polars)."""
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
    for check in checks:
        suite.add_expectation(check.expectation)
    derived = {c.gx_column: _nonfinite(frame, c.column) for c in checks if c.gx_column != c.column}
    pdf = frame.with_columns(
        [pl.col(c).list.len().alias(c) for c, t in frame.schema.items() if _is_list(t)]
        + [series.alias(name) for name, series in derived.items()]
    ).to_pandas()
    result = batch_def.get_batch(batch_parameters={"dataframe": pdf}).validate(suite)
    described = result.describe_dict()
    results = [
        {
            "expectation": r["expectation_type"],
            "column": r.get("kwargs", {}).get("column", "").removesuffix("__nonfinite"),
            "gx_column": r.get("kwargs", {}).get("column", ""),
            "success": r["success"],
            "unexpected_count": (r.get("result") or {}).get("unexpected_count"),
        }
        for r in described["expectations"]
    ]
    return {"statistics": described.get("statistics", {}), "results": results}


def describe_failure(frame: pl.DataFrame, source: str, check: Check, count: int | None) -> str:
    """One line naming the file, column, first bad row (0-based) and its example_id."""
    expectation = check.expectation.expectation_type
    bad = frame.with_row_index("_row").filter(check.bad(frame))
    if not bad.height:
        return f"{source}: column '{check.column}': failed check [{expectation}]"
    first = bad.row(0, named=True)
    return (
        f"{source}: column '{check.column}', row {first['_row']} (example_id={first.get('example_id')!r}): "
        f"{check.what(first)} [{expectation}; {count if count is not None else bad.height} bad rows]"
    )
