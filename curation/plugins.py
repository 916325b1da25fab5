"""Entry-point plugin registry.

Groups: ``curation.model_adapters``, ``curation.scorers``, ``curation.selectors``, ``curation.checks``,
``curation.mixture_optimizers``. Built-ins are declared in our own ``pyproject.toml`` under the same groups, so
there is one code path. Groups are read lazily on first lookup; a plugin that fails to import is reported with a
warning naming it and the error, never crashing lookups of the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from curation._internal.suggest import did_you_mean
from curation.errors import PluginError

log = logging.getLogger(__name__)

GROUPS = (
    "curation.model_adapters",
    "curation.scorers",
    "curation.selectors",
    "curation.checks",
    "curation.mixture_optimizers",
)


@dataclass(frozen=True)
class PluginEntry:
    """One entry point and its load status."""

    group: str
    name: str
    target: str
    obj: Any | None
    error: str | None


@cache
def _load_group(group: str) -> dict[str, PluginEntry]:
    entries: dict[str, PluginEntry] = {}
    for ep in entry_points(group=group):
        if ep.name in entries and entries[ep.name].target != ep.value:
            raise PluginError(
                f"plugin name '{ep.name}' in group {group} is registered twice ({entries[ep.name].target}, {ep.value})"
            )
        try:
            obj, error = ep.load(), None
        except Exception as exc:  # noqa: BLE001 - a broken third-party plugin must not break the others
            obj, error = None, f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s (%s) in %s failed to load: %s", ep.name, ep.value, group, error)
        entries[ep.name] = PluginEntry(group, ep.name, ep.value, obj, error)
    return entries


def list_plugins(group: str | None = None) -> list[PluginEntry]:
    """Every plugin of one group (or all groups) with its load status."""
    groups = [group] if group else list(GROUPS)
    return [entry for g in groups for entry in _load_group(g).values()]


def get_plugin(group: str, name: str) -> Any:
    """The loaded object registered as ``name`` in ``group``; unknown or broken names raise ``PluginError``."""
    entries = _load_group(group)
    if name not in entries:
        raise PluginError(f"no plugin '{name}' in {group}{did_you_mean(name, entries)}")
    entry = entries[name]
    if entry.obj is None:
        raise PluginError(f"plugin '{name}' in {group} failed to load: {entry.error}")
    return entry.obj
