"""Resolve model references (checkpoint file, training out folder, ``models:/`` URI) and load them."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from curation.errors import CurationError
from curation.models.base import ModelAdapter, load_adapter_model


def resolve_checkpoint(ref: str) -> Path:
    """A local checkpoint file for ``ref``: the file itself, a training folder's last checkpoint, or a download."""
    if ref.startswith(("models:/", "runs:/")):
        from curation.tracking.registry import fetch_checkpoint

        return fetch_checkpoint(ref)
    path = Path(ref)
    if path.is_dir():
        from curation.training.outputs import MANIFEST, read_manifest

        if not (path / MANIFEST).exists():
            raise CurationError(f"{path}: folder has no {MANIFEST}; name a checkpoint file instead")
        return Path(read_manifest(path)[-1]["path"])
    if not path.exists():
        raise CurationError(f"{path}: checkpoint not found")
    return path


def load_model(ref: str) -> tuple[ModelAdapter, nn.Module]:
    """Adapter and model (eval mode) behind ``ref``."""
    adapter, model, _ = load_adapter_model(resolve_checkpoint(ref))
    return adapter, model


def same_architecture(ref_a: str, a: ModelAdapter, ref_b: str, b: ModelAdapter) -> None:
    """Refuse to compare models built by different adapters or configs."""
    if a.name != b.name or a.config != b.config:
        raise CurationError(f"{ref_b}: model ({b.name}) does not match {ref_a} ({a.name}); same architecture needed")
