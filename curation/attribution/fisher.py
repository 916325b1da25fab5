"""Softmax outputs of a model, for curvature that only needs the output layer: the true Fisher (labels sampled
from the model's own predictive distribution) and the Gauss-Newton matrix of softmax cross-entropy.

An example's loss is read as ``Σ_t w_t · CE(logits_t, y_t)``; the two built-in output types are recognised from
the adapter's kind: a classifier adapter's class logits (label key ``y``; one position, ``w = 1``) and a causal-LM
adapter's next-token logits (``w_t = mask_t / Σ mask``, the mean token NLL that both built-in LM adapters train on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from curation.errors import CurationError
from curation.models.base import Batch, ModelAdapter, require_kind


def softmax_outputs(adapter: ModelAdapter, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [B, ..., K], weights [B, ...])`` with example loss ``Σ weights · CE(logits, labels)``."""
    if adapter.kind == "classifier":
        if "y" not in batch:
            raise CurationError(f"adapter '{adapter.name}': the Fisher/Gauss-Newton curvature needs labelled rows")
        logits = adapter.logits(model, batch)
        return logits, torch.ones(logits.shape[0], dtype=logits.dtype, device=logits.device)
    require_kind(adapter, "causal_lm", what="the Fisher/Gauss-Newton curvature (use fisher: empirical instead)")
    mask = batch["target_mask"]
    return adapter.logits(model, batch).float(), mask / mask.sum(-1, keepdim=True).clamp_min(1.0)


def sampled_example_losses(
    adapter: ModelAdapter, model: nn.Module, batch: Batch, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-example losses ``[B]`` at labels drawn from ``softmax(logits)`` (one forward pass, with graph)."""
    logits, weights = softmax_outputs(adapter, model, batch)
    flat = logits.reshape(-1, logits.shape[-1])
    probs = torch.softmax(flat.detach().double(), dim=-1)
    sampled = torch.multinomial(probs, 1, generator=generator).reshape(-1).to(flat.device)
    nll = F.cross_entropy(flat, sampled, reduction="none").reshape(weights.shape)
    return (nll * weights).reshape(weights.shape[0], -1).sum(1)
