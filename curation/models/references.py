"""One resolver for every way a user names a model: the only code that turns a reference into checkpoint files.

A reference is one of

- a checkpoint file (``.safetensors``, or a weights-only ``.pt`` / ``.pth`` / ``.bin`` state dict);
- a training output folder (``checkpoints.json`` beside ``ckpt-*.safetensors``: all its checkpoints, in step order);
- a folder of plain checkpoint files without a manifest (all of them, in file-name order);
- ``models:/name/version``, ``models:/name/latest`` or ``models:/name@alias`` from the MLflow registry;
- ``runs:/<run_id>/<artifact path>``, an artifact of an MLflow run (file or folder, as above).

Checkpoints written by ``curation.training`` describe themselves (adapter, model config, learning rate). A user's
own plain state dicts do not: ``PlainCheckpoints`` supplies what they lack (adapter name, model options, learning
rates), so the same commands work on them. Every failure is one ``CurationError`` line naming the reference.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from curation.errors import CurationError

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
MANIFEST = "checkpoints.json"
REMOTE_SCHEMES = ("models:/", "runs:/")


@dataclass(frozen=True, kw_only=True)
class PlainCheckpoints:
    """What plain checkpoints (state dicts without our metadata) need to be loaded and scored.

    ``learning_rates`` is one rate for every checkpoint or one per checkpoint in order (TracIn weights by it).
    """

    adapter: str
    model_options: dict[str, Any] = field(default_factory=dict)
    learning_rates: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.learning_rates or not all(math.isfinite(r) and r > 0 for r in self.learning_rates):
            raise CurationError(f"--lr: learning rates must be positive numbers, got {list(self.learning_rates)}")

    def learning_rate(self, index: int, count: int) -> float:
        """The rate of checkpoint ``index`` of ``count``."""
        if len(self.learning_rates) == 1:
            return self.learning_rates[0]
        if len(self.learning_rates) != count:
            raise CurationError(f"--lr: {len(self.learning_rates)} learning rates for {count} checkpoints")
        return self.learning_rates[index]


def resolve_checkpoints(ref: str | Path) -> list[Path]:
    """Local checkpoint files behind ``ref``, in training order (a remote reference is downloaded first)."""
    text = str(ref).strip()
    if not text:
        raise CurationError("checkpoint reference is empty (a file, a folder or a models:/ URI is needed)")
    if text.startswith(REMOTE_SCHEMES):
        from curation.tracking.registry import fetch_artifacts

        return _local_checkpoints(fetch_artifacts(text), shown=text)
    return _local_checkpoints(Path(text), shown=text)


def resolve_checkpoint(ref: str | Path) -> Path:
    """The final checkpoint behind ``ref`` (the last one of a training folder)."""
    return resolve_checkpoints(ref)[-1]


def _local_checkpoints(path: Path, *, shown: str) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.exists():
        raise CurationError(f"{shown}: checkpoint not found (a file, a training output folder or a models:/ URI)")
    manifest = path / MANIFEST
    if manifest.is_file():
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8")).get("checkpoints") or []
            files = [path / e["file"] for e in sorted(entries, key=lambda e: int(e["step"]))]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CurationError(f"{manifest}: not a valid checkpoint manifest ({exc})") from None
        if not files:
            raise CurationError(f"{manifest}: lists no checkpoints")
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise CurationError(f"{manifest}: lists {missing[0].name}, which is not in the folder")
        return files
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    if not files:
        raise CurationError(f"{shown}: folder has no {MANIFEST} and no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})")
    return files


def load_models(
    ref: str | Path, *, last: int | None = None, plain: PlainCheckpoints | None = None
) -> tuple[Any, list[tuple[Path, nn.Module, float]]]:
    """Adapter and ``(path, model, learning_rate)`` of every checkpoint behind ``ref`` (the last ``last`` only).

    Every checkpoint must come from the same adapter and model config; ``plain`` describes checkpoints that carry
    no metadata (a user's own state dicts) and is ignored for self-describing ones.
    """
    from curation.models.base import load_adapter_model

    if last is not None and last < 1:
        raise CurationError(f"last: expected at least 1 checkpoint, got {last}")
    paths = resolve_checkpoints(ref)
    paths = paths[-last:] if last else paths
    adapter, loaded = None, []
    for index, path in enumerate(paths):
        fallback = None if plain is None else (plain.adapter, plain.model_options, plain.learning_rate(index, len(paths)))
        this_adapter, model, lr = load_adapter_model(path, plain=fallback)
        if adapter is not None and (this_adapter.name, this_adapter.config) != (adapter.name, adapter.config):
            raise CurationError(f"{path}: built by a different adapter or model config than {paths[0]}")
        adapter = this_adapter
        loaded.append((path, model, lr))
    return adapter, loaded


def load_final_model(ref: str | Path, *, plain: PlainCheckpoints | None = None) -> tuple[Any, nn.Module]:
    """Adapter and model (eval mode) of the final checkpoint behind ``ref``."""
    adapter, loaded = load_models(ref, last=1, plain=plain)
    return adapter, loaded[-1][1]

