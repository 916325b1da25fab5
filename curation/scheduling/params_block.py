"""The ``schedule:`` block of params.yaml: declared by no stage, so editing it never invalidates DVC caches.

``curate schedule sync`` makes the job store equal to it: entries are added or replaced, and stored schedules the
block does not name are removed (so a team keeps its schedules in git, reviewed like any other change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from curation.config import load
from curation.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ScheduleEntry:
    """One schedule in params.yaml."""

    cron: str = field(metadata={"help": "five-field crontab expression in UTC"})
    target: str = field(metadata={"help": "DVC stage to reproduce"})
    pull: bool = field(default=False, metadata={"help": "git pull --ff-only and dvc pull first"})


def read_schedule_block(params_file: str | Path) -> dict[str, ScheduleEntry]:
    """Entries of the ``schedule:`` block (empty when absent); strict like every params block."""
    path = Path(params_file)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from None
    block = params.get("schedule") or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{path}:schedule: expected a mapping of name -> {{cron, target}}")
    return {str(name): load(ScheduleEntry, entry, where=f"{path}:schedule.{name}") for name, entry in block.items()}
