"""Shared pieces of ``curate influence`` and ``curate label-errors``: build any registered scorer from command-line
options, read the user's tables, and compute self-influence with whichever scorer was chosen."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import yaml

from curation.attribution.base import ScoringContext
from curation.errors import ConfigError, DataContractError
from curation.io import read_table
from curation.models.references import PlainCheckpoints
from curation.plugins import get_plugin


def parse_overrides(pairs: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested mapping, values parsed as YAML scalars/lists; errors name ``option``, the
    command-line flag the pairs came from."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {pair!r}: expected KEY=VALUE")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return out


# options the commands set from their own flags (--store, --normalize, --projection/--dim); a scorer without them
# ignores them, while any other key (from --set) must be one of the scorer's options
COMMAND_OPTIONS = frozenset({"store", "normalize", "projection"})


def build_scorer(method: str, options: dict[str, Any]) -> Any:
    """The registered scorer ``method`` (an unknown name lists the registered ones) with ``options`` loaded
    strictly: a key that is not one of its options is an error listing the valid ones."""
    from curation._internal.suggest import did_you_mean
    from curation.plugins import build_method, registered_names

    if method not in registered_names("curation.scorers"):
        return build_method("curation.scorers", method, where="--method")  # raises, listing the valid names
    fields = [f.name for f in dataclasses.fields(get_plugin("curation.scorers", method).config_cls)]
    unknown = sorted(k for k in options if k not in fields and k not in COMMAND_OPTIONS)
    if unknown:
        raise ConfigError(f"--set: unknown key '{unknown[0]}' for method '{method}'{did_you_mean(unknown[0], fields)}")
    mapping = {k: v for k, v in options.items() if k in fields and v is not None}
    return build_method("curation.scorers", {"name": method, "options": mapping}, where=f"--method {method}")


def read_examples(path: str, *, what: str, adapter: Any) -> pl.DataFrame:
    """The table at ``path``, checked against the contract ``adapter`` needs (polars checks, then the Great
    Expectations suite ``validate_data`` runs); errors name the file, column and first bad row."""
    return check_examples(read_table(path), path, what=what, adapter=adapter)


def check_examples(frame: pl.DataFrame, path: str, *, what: str, adapter: Any) -> pl.DataFrame:
    """``frame`` (already read from ``path``) checked as ``read_examples`` checks it, so a command that needs the
    table before it has an adapter (to read the model's shape off it) reads the file once."""
    from curation.validation import validate_frame
    from curation.validation.adapter_contract import contract_for_adapter

    if frame.height == 0:
        raise DataContractError(f"{path}: no rows ({what} table)")
    validate_frame(frame, contract_for_adapter(adapter), source=path)
    return frame


def plain_checkpoints(adapter: str | None, options: Sequence[str], lrs: Sequence[float]) -> PlainCheckpoints | None:
    """``PlainCheckpoints`` from command-line values (``--adapter``, ``--model-option k=v``, ``--lr``), or None."""
    if adapter is None:
        if options or lrs:
            raise ConfigError("--model-option and --lr describe plain checkpoints and need --adapter")
        return None
    return PlainCheckpoints(adapter=adapter, model_options=parse_overrides(options, "--model-option"),
                            learning_rates=tuple(lrs) if lrs else (1.0,))


def self_influence(scorer: Any, context: ScoringContext) -> np.ndarray:
    """Self-influence of every training row from the scorer (every ``Scorer`` has ``self_influence``)."""
    return np.asarray(scorer.self_influence(context))
