"""Entry-point plugin registry.

Groups: ``curation.model_adapters``, ``curation.scorers``, ``curation.membership_scores``, ``curation.selectors``,
``curation.selection_scorers`` (pool + target texts -> per-example selection scores for a selector),
``curation.checks``, ``curation.mixture_optimizers``. Built-ins are declared in our own ``pyproject.toml`` under
the same groups, so there is one code path. Groups are read lazily on first lookup; a plugin that fails to import
is reported with a warning naming it and the error, never crashing lookups of the others.
``curation.tree_scorers`` holds influence methods for boosted trees (they score a fitted booster, not checkpoints).
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
    "curation.tree_scorers",
    "curation.membership_scores",
    "curation.selectors",
    "curation.selection_scorers",
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
    if group is not None and group not in GROUPS:
        raise PluginError(f"--group: unknown entry-point group '{group}'{did_you_mean(group, GROUPS)}")
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


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry as written in params.yaml, on the command line or by a plugin: ``{name, options}``.

    ``options`` are the keys of the method's ``config_cls``; unknown keys are errors that list the valid ones.
    """

    name: str
    options: dict[str, Any]

    @classmethod
    def parse(cls, raw: Any, *, where: str = "method") -> MethodSpec:
        """``"tracin"`` or ``{"name": "tracin", "options": {...}}`` -> ``MethodSpec``; anything else is an error."""
        if isinstance(raw, str):
            return cls(raw, {})
        if isinstance(raw, MethodSpec):
            return raw
        if not isinstance(raw, dict) or "name" not in raw:
            raise PluginError(f"{where}: expected a method name or a mapping {{name, options}}, got {raw!r}")
        extra = set(raw) - {"name", "options"}
        if extra:
            raise PluginError(f"{where}: unknown key '{min(extra)}' (valid: name, options)")
        options = raw.get("options") or {}
        if not isinstance(options, dict):
            raise PluginError(f"{where}.options: expected a mapping, got {type(options).__name__}")
        return cls(str(raw["name"]), dict(options))


def registered_names(group: str) -> list[str]:
    """Names that load in ``group`` (for error messages and ``--help``)."""
    return sorted(name for name, entry in _load_group(group).items() if entry.obj is not None)


def build_method(group: str, spec: MethodSpec | str | dict[str, Any], *, where: str | None = None) -> Any:
    """Instantiate a registered method from ``{name, options}``, loading the options strictly into its config.

    The one constructor that the CLI, the DVC stages and plugins use, so a method behaves the same everywhere.
    An unknown name lists the registered names; an unknown option lists the method's options.
    """
    from curation.config import load

    spec = MethodSpec.parse(spec, where=where or group)
    entries = _load_group(group)
    if spec.name not in entries:
        raise PluginError(
            f"{where or group}: unknown method '{spec.name}'{did_you_mean(spec.name, registered_names(group))}"
        )
    cls = get_plugin(group, spec.name)
    config_cls = getattr(cls, "config_cls", None)
    if config_cls is None:
        if spec.options:
            raise PluginError(f"{where or spec.name}: method '{spec.name}' takes no options")
        return cls()
    options = {k: v for k, v in spec.options.items() if v is not None}
    return cls(load(config_cls, options, where=f"{where or spec.name} options"))
