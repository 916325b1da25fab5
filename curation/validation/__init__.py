"""Data contracts: structural checks in polars, then a Great Expectations suite (imported lazily: 5-9 s).

``validate_table(path, contract)`` reads a table, checks it, and either returns a ``ValidationReport`` (GX result
summary for the report artifact) or raises ``DataContractError`` with one line naming the file, column and first
bad row.
"""

from curation.validation.contracts import CONTRACTS, TableContract
from curation.validation.validate import ValidationReport, validate_frame, validate_table

__all__ = ["CONTRACTS", "TableContract", "ValidationReport", "validate_frame", "validate_table"]
