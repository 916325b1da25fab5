"""Membership scores used by unlearning verification: loss, Min-K% and Min-K%++ (higher = more member-like).

A batched form of the provenance package's scorers (methods spec section 3.1) that also covers classifiers: the
distribution moments and the "lowest k" count come from ``curation.provenance.membership``, so both packages
score the same way (a test checks equality on a GPT). Scores need each target's log-probability and, for
Min-K%++, the model's whole next-token distribution, obtained per adapter family:

- byte GPT rows: one distribution per next byte (``T`` = text length);
- tabular classifiers: the class distribution is one "token" whose target is the label (``T`` = 1), so Min-K%
  equals the loss score and Min-K%++ is the label's z-score under the predicted distribution.
"""

from __future__ import annotations

import polars as pl
import torch
from torch import nn

from curation.models.base import Batch, ModelAdapter
from curation.provenance.membership import distribution_moments, n_lowest

SCORES = ("loss", "min_k", "min_k_pp")


def next_token_logprobs(
    adapter: ModelAdapter, model: nn.Module, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(log_probs [B,T,V], targets [B,T], mask [B,T])`` for adapters whose output is a distribution, else None."""
    if adapter.kind == "causal_lm":
        return adapter.token_distributions(model, batch), batch["targets"], batch["target_mask"]
    if adapter.kind == "classifier" and "y" in batch:
        logp = torch.log_softmax(adapter.logits(model, batch).double(), dim=-1)
        return logp[:, None, :], batch["y"][:, None], torch.ones(batch["y"].shape[0], 1)
    return None


def lowest_k_mean(values: torch.Tensor, mask: torch.Tensor, k: float) -> torch.Tensor:
    """Per row, the mean of the lowest ``n_lowest(n_valid, k)`` masked values."""
    filled = values.masked_fill(mask <= 0, float("inf"))
    ordered = filled.sort(dim=-1).values
    n_keep = torch.tensor([n_lowest(int(n), k) for n in mask.sum(-1).round().tolist()], dtype=torch.long)
    take = torch.arange(values.shape[-1])[None, :] < n_keep[:, None]
    return torch.where(take, ordered, torch.zeros_like(ordered)).sum(-1) / n_keep


def token_scores(logp: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, *, k: float) -> dict[str, torch.Tensor]:
    """Loss (mean target log-prob), Min-K% and Min-K%++ scores per row from full next-token log-distributions.

    Min-K%++ normalises each target log-prob by the distribution's mean ``mu = sum p log p`` and standard
    deviation ``sqrt(sum p (log p)^2 - mu^2)`` before taking the mean of the lowest ``k`` fraction.
    """
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mu, sigma = distribution_moments(logp)
    z = (picked - mu) / sigma.clamp_min(1e-12)
    n = mask.sum(-1).clamp_min(1.0)
    return {
        "loss": (picked * mask).sum(-1) / n,
        "min_k": lowest_k_mean(picked, mask, k),
        "min_k_pp": lowest_k_mean(z, mask, k),
    }


@torch.no_grad()
def membership_scores(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, k: float = 0.4, chunk: int = 128
) -> pl.DataFrame:
    """``example_id, loss_value, score_loss, score_min_k, score_min_k_pp`` (Min-K columns null when unavailable).

    ``loss_value`` is the adapter's per-example loss; ``score_loss`` is its negation (higher = member).
    """
    model.eval()
    rows: dict[str, list[float]] = {"loss_value": [], **{f"score_{s}": [] for s in SCORES}}
    for start in range(0, frame.height, chunk):
        batch = adapter.collate(frame[start : start + chunk])
        losses = adapter.example_losses(model, batch).double()
        rows["loss_value"] += losses.tolist()
        rows["score_loss"] += (-losses).tolist()
        dist = next_token_logprobs(adapter, model, batch)
        if dist is None:
            for name in ("min_k", "min_k_pp"):
                rows[f"score_{name}"] += [None] * losses.shape[0]
            continue
        scores = token_scores(*dist, k=k)
        for name in ("min_k", "min_k_pp"):
            rows[f"score_{name}"] += scores[name].double().tolist()
    return pl.DataFrame({"example_id": frame["example_id"], **rows},
                        schema_overrides={c: pl.Float64 for c in rows})
