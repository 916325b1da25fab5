"""Checks on the models an unlearning verification compares (references resolve in ``curation.models.references``)."""

from __future__ import annotations

from curation.errors import CurationError
from curation.models.base import ModelAdapter


def same_architecture(ref_a: str, a: ModelAdapter, ref_b: str, b: ModelAdapter) -> None:
    """Refuse to compare models built by different adapters or configs."""
    if a.name != b.name or a.config != b.config:
        raise CurationError(f"{ref_b}: model ({b.name}) does not match {ref_a} ({a.name}); same architecture needed")
