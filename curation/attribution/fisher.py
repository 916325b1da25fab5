"""Per-example losses with labels sampled from the model's own predictive distribution (the "true" Fisher).

EK-FAC fits its curvature to the Fisher ``E_{y~p(y|x)}[∇ℓ ∇ℓᵀ]``, which equals the Gauss-Newton matrix for
softmax cross-entropy; using the observed labels instead (the "empirical" Fisher) is cheaper but a poorer
approximation. An adapter may provide ``sampled_example_losses(model, batch, generator)``; otherwise the two
built-in output types are recognised from the batch: class logits (``adapter.logits`` + label key ``y``) and
next-token prediction (``input_ids``, ``targets``, ``target_mask``; loss = mean token NLL per row, as in the byte
GPT adapter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from curation.errors import CurationError
from curation.models.base import Batch, ModelAdapter


def _sample(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    probs = torch.softmax(logits.detach().double(), dim=-1).reshape(-1, logits.shape[-1])
    return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


def sampled_example_losses(
    adapter: ModelAdapter, model: nn.Module, batch: Batch, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-example losses ``[B]`` at labels drawn from ``softmax(logits)`` (one forward pass, with graph)."""
    custom = getattr(adapter, "sampled_example_losses", None)
    if custom is not None:
        return custom(model, batch, generator)
    if "y" in batch and hasattr(adapter, "logits"):
        logits = adapter.logits(model, batch)
        return F.cross_entropy(logits, _sample(logits, generator).to(logits.device), reduction="none")
    if {"input_ids", "targets", "target_mask"} <= batch.keys():
        logits = model(batch["input_ids"])
        sampled = _sample(logits, generator).to(logits.device)
        nll = F.cross_entropy(logits.transpose(1, 2).float(), sampled, reduction="none")
        mask = batch["target_mask"]
        return (nll * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
    raise CurationError(
        f"adapter '{getattr(adapter, 'name', type(adapter).__name__)}' cannot sample labels for the Fisher: set "
        "fisher: empirical, or give the adapter a sampled_example_losses(model, batch, generator) method"
    )
