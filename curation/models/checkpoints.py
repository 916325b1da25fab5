"""Safe checkpoint files: safetensors with JSON metadata, or weights-only torch state dicts.

A checkpoint records which adapter built it, the model config (so it can be rebuilt without pickled code), the
training step and the learning rate in force when it was saved (TracIn weights checkpoints by it).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from curation.errors import UnsafeCheckpointError
from curation.io.atomic import atomic_path


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """Metadata stored inside a checkpoint file."""

    adapter: str
    model_config: dict[str, Any]
    step: int
    learning_rate: float
    extra: dict[str, Any] | None = None


def save_checkpoint(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], info: CheckpointInfo) -> Path:
    """Save ``state_dict`` as safetensors (atomically) with ``info`` in the header metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {
        "adapter": info.adapter,
        "model_config": json.dumps(info.model_config, sort_keys=True),
        "step": str(info.step),
        "learning_rate": repr(float(info.learning_rate)),
        "extra": json.dumps(info.extra or {}, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], CheckpointInfo | None]:
    """Load a checkpoint without executing code.

    ``.safetensors`` files carry their ``CheckpointInfo``; ``.pt``/``.pth``/``.bin`` files are read with
    ``torch.load(weights_only=True)`` and have none. A file that needs pickled code raises ``UnsafeCheckpointError``.
    Any reference ``curation.models.references`` resolves (a training folder, ``models:/`` URI, ...) stands for its
    final checkpoint.
    """
    from curation.models.references import resolve_checkpoint

    path = resolve_checkpoint(path)
    if path.suffix == ".safetensors":
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UnsafeCheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        info = None
        if "adapter" in meta:
            info = CheckpointInfo(
                adapter=meta["adapter"],
                model_config=json.loads(meta.get("model_config", "{}")),
                step=int(meta.get("step", 0)),
                learning_rate=float(meta.get("learning_rate", "nan")),
                extra=json.loads(meta.get("extra", "{}")),
            )
        return tensors, info
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: the file needs pickled code, which is never executed "
            f"(re-save it as safetensors or a weights-only state dict) [{str(exc).splitlines()[0][:120]}]"
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UnsafeCheckpointError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj, None
