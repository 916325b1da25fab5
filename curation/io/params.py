"""Stage params: what ``dvc.yaml`` declares for a stage, read through ``dvc.api`` inside a DVC repo.

Outside a DVC repo (the CLI on a user's files, unit tests) the block is read straight from the YAML file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from curation.errors import ConfigError


def load_stage_params(stage: str, *, params_file: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """Return the ``stage`` block of the params file (empty dict when the block is absent).

    In a DVC repo the block comes from ``dvc.api.params_show(stages=stage)``, so a stage only sees the keys its
    ``dvc.yaml`` entry declares and cannot depend on undeclared params.
    """
    params_file = Path(params_file)
    if not params_file.exists():
        raise ConfigError(f"{params_file}: file not found")
    if Path("dvc.yaml").exists() and Path(".dvc").is_dir():
        import dvc.api

        try:
            params = dvc.api.params_show(str(params_file), stages=stage)
        except Exception as exc:  # noqa: BLE001 - dvc raises many types; report the first line
            raise ConfigError(f"{params_file}: cannot read params for stage '{stage}': {exc}") from None
    else:
        try:
            params = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{params_file}: invalid YAML: {str(exc).splitlines()[0]}") from None
    block = params.get(stage, {})
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"{params_file}:{stage}: expected a mapping, got {type(block).__name__}")
    return block
