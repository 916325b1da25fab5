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


def final_checkpoint(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or for a training output folder (with ``checkpoints.json``) its last checkpoint.

    Lets params name "the model of that run" (``checkpoints/lm``) rather than a step-numbered file that changes
    whenever the run's length does.
    """
    path = Path(path)
    manifest = path / "checkpoints.json"
    if not path.is_dir():
        return path
    if not manifest.is_file():
        raise FileNotFoundError(f"{path}: a folder without checkpoints.json; name a checkpoint file instead")
    entries = json.loads(manifest.read_text(encoding="utf-8")).get("checkpoints") or []
    if not entries:
        raise FileNotFoundError(f"{manifest}: lists no checkpoints")
    return path / max(entries, key=lambda c: c["step"])["file"]


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], CheckpointInfo | None]:
    """Load a checkpoint without executing code.

    ``.safetensors`` files carry their ``CheckpointInfo``; ``.pt``/``.pth``/``.bin`` files are read with
    ``torch.load(weights_only=True)`` and have none. A file that needs pickled code raises ``UnsafeCheckpointError``.
    A training output folder stands for its final checkpoint (``final_checkpoint``).
    """
    path = final_checkpoint(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
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
