"""requirements.lock pins every dependency that pyproject.toml declares (core and the extras CI installs), and the
environment the tests run in is exactly the locked one, so a fresh clone tests what CI tested."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKED_EXTRAS = ("dev", "gbdt", "hf", "ray", "selection")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.split(r"[\s<>=!~\[;]", spec.strip(), maxsplit=1)[0])


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, pinned = line.partition("==")
        assert sep, f"requirements.lock: {line!r} is not pinned with =="
        pins[_canonical(name)] = pinned
    return pins


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        specs += project.get("optional-dependencies", {}).get(extra, [])
    return {_requirement_name(s) for s in specs}


def test_every_declared_dependency_is_pinned() -> None:
    missing = sorted(_declared() - set(_lock()))
    assert not missing, f"declared in pyproject.toml but not pinned in requirements.lock (run make lock): {missing}"


def test_installed_versions_are_the_locked_ones() -> None:
    wrong = []
    for name, pinned in _lock().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            wrong.append(f"{name}: locked {pinned}, not installed")
            continue
        if installed != pinned:
            wrong.append(f"{name}: locked {pinned}, installed {installed}")
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the Makefile's locked venv ({sys.prefix})")
    assert not wrong, "; ".join(wrong[:10])
