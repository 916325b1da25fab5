"""Shared entry-point harness: logging, strict params loading, one-line errors with a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from curation._internal.logging_setup import configure_logging
from curation.config import load
from curation.errors import CurationError
from curation.io.params import load_stage_params

C = TypeVar("C")


def run_stage(stage: str, config_cls: type[C], body: Callable[[C], Any]) -> None:
    """Load the ``stage`` block of params.yaml into ``config_cls`` and run ``body``; user errors exit 2."""
    configure_logging()
    try:
        config = load(config_cls, load_stage_params(stage), where=f"params.yaml:{stage}")
        body(config)
    except CurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
