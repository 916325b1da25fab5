"""Logging handlers for the two process entry points (the CLI and the DVC stages); library code only logs."""

from __future__ import annotations

import logging
import os

NOISY = ("alembic", "mlflow", "urllib3", "matplotlib", "great_expectations")


def configure_logging(level: int | str | None = None) -> None:
    """Root handler at ``level`` (default ``CURATION_LOG_LEVEL`` or INFO); chatty dependencies at WARNING."""
    logging.basicConfig(level=level or os.environ.get("CURATION_LOG_LEVEL", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
