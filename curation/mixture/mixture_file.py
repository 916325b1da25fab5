"""``mixture.yaml``: the domain weights a training stage samples by, written by ``optimize_mixture``.

Layout (the ``mixture`` block is what DVC tracks as params of ``train_lm_mixture``; ``source`` is provenance)::

    mixture:            # weight per domain, sums to 1
      code: 0.31
      licenses: 0.22
    source: {optimizer: tikmix_d, checkpoint: checkpoints/lm, ...}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from curation.errors import ConfigError
from curation.io import write_text


def write_mixture(weights: dict[str, float], dest: str | Path, *, source: dict[str, Any] | None = None) -> Path:
    """Write ``weights`` (normalised to sum 1, rounded to 6 digits) and provenance atomically."""
    total = sum(weights.values())
    body = {"mixture": {k: round(float(v) / total, 6) for k, v in sorted(weights.items())}}
    if source:
        body["source"] = source
    header = "# Domain mixture written by the optimize_mixture stage; train_lm_mixture samples domains by it.\n"
    return write_text(header + yaml.safe_dump(body, sort_keys=False), dest)


def read_mixture(path: str | Path) -> dict[str, float]:
    """The ``mixture`` block as ``{domain: weight}`` (normalised); errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: mixture file not found (run the optimize_mixture stage first)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    block = data.get("mixture") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not block:
        raise ConfigError(f"{path}: missing or empty 'mixture' mapping (domain: weight)")
    weights: dict[str, float] = {}
    for domain, value in block.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{path}: mixture.{domain}: weight must be a non-negative number, got {value!r}")
        weights[str(domain)] = float(value)
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"{path}: mixture weights sum to 0")
    return {k: v / total for k, v in weights.items()}
