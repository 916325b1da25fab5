"""Table contracts: required columns with their kinds, optional columns, label range, feature-list length.

Beyond column kinds, every contract requires unique ids, no nulls in required columns, finite numbers (no NaN or
infinity, inside feature lists too), feature lists of one length, and labels inside ``label_range`` when it is
known; ``curation.validation.validate`` runs these as a Great Expectations suite."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

KINDS = ("id", "text", "integer", "float", "string", "float_list")


@dataclass(frozen=True, kw_only=True)
class TableContract:
    """What a table must hold. Kinds: id (string or integer), text, integer, float, string, float_list."""

    name: str
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    label_range: tuple[int, int] | None = None  # inclusive bounds of ``label`` when present
    feature_length: int | None = None  # every float_list must have this many values (None: all rows alike)

    def kind_of(self, column: str) -> str | None:
        return self.required.get(column) or self.optional.get(column)


def dtype_matches(dtype: pl.DataType, kind: str) -> bool:
    """Whether a polars dtype satisfies a contract kind."""
    if kind == "id":
        return dtype == pl.String or dtype.is_integer()
    if kind in ("text", "string"):
        return dtype == pl.String
    if kind == "integer":
        return dtype.is_integer()
    if kind == "float":
        return dtype.is_numeric()
    if kind == "float_list":
        return isinstance(dtype, (pl.List, pl.Array)) and dtype.inner.is_numeric()
    raise ValueError(f"unknown column kind {kind!r}; expected one of {KINDS}")


EXPECTED = {
    "id": "string or integer",
    "text": "string",
    "string": "string",
    "integer": "integer",
    "float": "numeric",
    "float_list": "list of numbers",
}

COMMON_OPTIONAL = {"domain": "string", "source": "string", "position": "integer", "task": "string", "split": "string"}

CONTRACTS: dict[str, TableContract] = {
    "text": TableContract(
        name="text",
        required={"example_id": "id", "text": "text"},
        optional={"label": "integer", **COMMON_OPTIONAL},
    ),
    "features": TableContract(
        name="features",
        required={"example_id": "id", "features": "float_list", "label": "integer"},
        optional=COMMON_OPTIONAL,
    ),
}
