"""The registry contract, run over every registered entry point of every group (built-ins and installed plugins):
each loads, is named as registered, builds from ``{name, options}`` through ``build_method`` with its defaults,
rejects an unknown option with a message that lists the valid ones, and model adapters implement the
sub-protocol their ``kind`` declares."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from curation.errors import CurationError, PluginError
from curation.models.base import ADAPTER_KINDS, CausalLMAdapter, ClassifierAdapter, TreeModelAdapter
from curation.plugins import GROUPS, MethodSpec, build_method, list_plugins

ENTRIES = [(entry.group, entry.name) for entry in list_plugins()]
CLASS_ENTRIES = [(entry.group, entry.name) for entry in list_plugins() if inspect.isclass(entry.obj)]
SUB_PROTOCOL = {"classifier": ClassifierAdapter, "causal_lm": CausalLMAdapter, "tree": TreeModelAdapter}


def _entry(group: str, name: str):
    return next(e for e in list_plugins(group) if e.name == name)


def _has_defaults(config_cls: type) -> bool:
    return all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(config_cls) if f.init)


def test_every_group_has_entries() -> None:
    assert {g for g, _ in ENTRIES} == set(GROUPS)
    assert len(ENTRIES) >= 20


@pytest.mark.parametrize(("group", "name"), ENTRIES, ids=[f"{g}:{n}" for g, n in ENTRIES])
def test_entry_loads_and_is_documented(group: str, name: str) -> None:
    entry = _entry(group, name)
    assert entry.error is None, entry.error
    assert callable(entry.obj) and (entry.obj.__doc__ or "").strip(), f"{entry.target} needs a docstring"


@pytest.mark.parametrize(("group", "name"), CLASS_ENTRIES, ids=[f"{g}:{n}" for g, n in CLASS_ENTRIES])
def test_class_entry_builds_from_name_and_options(group: str, name: str) -> None:
    cls = _entry(group, name).obj
    assert getattr(cls, "name", name) == name, f"{cls.__name__}.name is {cls.name!r}, registered as {name!r}"
    config_cls = getattr(cls, "config_cls", None)
    if config_cls is None:
        return
    assert dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen
    valid = [f.name for f in dataclasses.fields(config_cls) if f.init]
    with pytest.raises(CurationError, match=r"unknown key 'no_such_option'.*valid: ") as err:
        build_method(group, {"name": name, "options": {"no_such_option": 1}})
    assert all(key in str(err.value) for key in valid)
    if not _has_defaults(config_cls):
        with pytest.raises(CurationError, match="missing required key"):
            build_method(group, name)
        return
    try:
        method = build_method(group, MethodSpec(name, {}))
    except CurationError as exc:  # defaults that need a user's choice (hf_causal_lm: which model) say what to set
        assert "\n" not in str(exc) and str(exc).startswith(f"{name} options: ")
        return
    assert isinstance(method, cls) and method.config == config_cls()


@pytest.mark.parametrize("name", [n for g, n in ENTRIES if g == "curation.model_adapters"])
def test_model_adapter_implements_its_kind(name: str) -> None:
    cls = _entry("curation.model_adapters", name).obj
    assert cls.kind in ADAPTER_KINDS, f"{name}: kind {getattr(cls, 'kind', None)!r} not in {ADAPTER_KINDS}"
    members = [m for m in dir(SUB_PROTOCOL[cls.kind]) if not m.startswith("_") and m != "config"]
    missing = [m for m in members if not hasattr(cls, m)]
    assert not missing, f"{name} declares kind {cls.kind} but lacks {missing}"


def test_unknown_method_lists_the_registered_ones() -> None:
    with pytest.raises(PluginError) as err:
        build_method("curation.scorers", "tracinn")
    message = str(err.value)
    assert "did you mean 'tracin'?" in message and "ekfac" in message and "trak" in message
    assert "\n" not in message


@pytest.mark.parametrize(("raw", "match"), [
    (3, "expected a method name or a mapping"),
    ({"options": {}}, "expected a method name or a mapping"),
    ({"name": "tracin", "opts": {}}, "unknown key 'opts'"),
    ({"name": "tracin", "options": [1]}, "options: expected a mapping"),
])
def test_method_spec_rejects_malformed_entries(raw: object, match: str) -> None:
    with pytest.raises(PluginError, match=match):
        MethodSpec.parse(raw, where="params.yaml:score_influence.method")
