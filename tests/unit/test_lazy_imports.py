"""Importing a stage never imports Great Expectations (3-9 s of import time): only the functions that run a
contract check (curation.validation.validate) import it, so a stage that does not validate never pays for it."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import curation.stages
for module in pkgutil.iter_modules(curation.stages.__path__):
    importlib.import_module(f"curation.stages.{module.name}")
    if "great_expectations" in sys.modules:
        sys.exit(f"importing curation.stages.{module.name} imported great_expectations")
"""


def test_no_stage_module_imports_great_expectations() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
