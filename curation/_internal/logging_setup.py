"""Logging handlers for the two process entry points (the CLI and the DVC stages); library code only logs."""

from __future__ import annotations

import logging
import os

NOISY = ("alembic", "mlflow", "urllib3", "matplotlib", "great_expectations")


def configure_logging(level: int | str | None = None) -> None:
    """Root handler at ``level`` (default ``CURATION_LOG_LEVEL`` or INFO); chatty dependencies at WARNING."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by MLflow when it is imported later (lazily)
    existing = list(logging.getLogger().handlers)
    logging.basicConfig(level=level or os.environ.get("CURATION_LOG_LEVEL", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # ours only: a dependency that resets its level stays quiet
        if handler not in existing:
            handler.addFilter(_QuietDependencies())


class _QuietDependencies(logging.Filter):
    """Drop records below WARNING from the chatty dependencies, whatever level they set on their loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] not in NOISY
