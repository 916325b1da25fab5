"""Model adapters: the only code that knows a model (build, collate, per-example loss, tracked modules)."""

from curation.models.base import ModelAdapter, load_adapter_model
from curation.models.checkpoints import CheckpointInfo, load_checkpoint, save_checkpoint

__all__ = ["CheckpointInfo", "ModelAdapter", "load_adapter_model", "load_checkpoint", "save_checkpoint"]
