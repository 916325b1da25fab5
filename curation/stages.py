"""Registry of built-in stage names -> their config dataclass (lazily imported), for the CLI and hooks."""

from __future__ import annotations

from collections.abc import Callable


def _stage(name: str) -> Callable[[], type]:
    def resolve() -> type:
        from curation.config import stages

        return getattr(stages, name)

    return resolve


STAGE_CONFIGS: dict[str, Callable[[], type]] = {
    "prepare_data": _stage("PrepareDataConfig"),
    "validate_data": _stage("ValidateDataConfig"),
    "train_lm": _stage("TrainLMConfig"),
    "train_classifier": _stage("TrainClassifierConfig"),
    "build_report": _stage("BuildReportConfig"),
}
