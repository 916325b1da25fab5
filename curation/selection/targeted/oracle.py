"""The one-step-probe oracle of the learned influence predictors (methods spec section 12a), per reference batch,
and its test-retest reliability.

A probe takes one SGD step of size ``lr`` on a single candidate (the adapter's tracked modules only) and records
the change of the mean loss on a reference set (negative = the candidate helps). The reference set is a *sample* of
the target task, so the label carries sampling noise: probing against two disjoint reference batches of the same
task gives two labels whose rank agreement is the oracle's test-retest reliability, and no predictor can agree with
the oracle better than the oracle agrees with itself. ``probe_label_batches`` returns one label per reference batch
from a single stepped forward pass over all batches (the mean over equal-sized batches is the probe against their
union), and ``oracle_reliability`` turns those columns into the split-half figures.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import polars as pl
import torch
from scipy.stats import spearmanr
from torch import nn

from curation.errors import DataContractError
from curation.gradients.per_example import SubstitutedModule, per_example_gradients, tracked_parameters
from curation.models.base import ModelAdapter


def probe_loss_changes(adapter: ModelAdapter, model: nn.Module, candidates: pl.DataFrame, reference: pl.DataFrame,
                       *, lr: float, batch_size: int = 16) -> np.ndarray:
    """``[n_candidates, n_reference]``: change of each reference row's loss after one SGD step of size ``lr`` on
    each candidate alone. Its row mean is MATES' probe label; each entry is a pairwise (candidate, target)
    influence, NN-CIFT's kind of oracle value."""
    if reference.height == 0:
        raise DataContractError("probe oracle: the reference set is empty")
    model.eval()
    names = adapter.tracked_modules(model)
    params = tracked_parameters(model, names)
    ref = adapter.collate(reference)
    with torch.no_grad():
        base = adapter.example_losses(model, ref).double()
    changes = np.empty((candidates.height, reference.height))
    for start in range(0, candidates.height, batch_size):
        grads = per_example_gradients(adapter, model, adapter.collate(candidates[start:start + batch_size]),
                                      modules=names).detach()
        for i, g in enumerate(grads):
            stepped, offset = {}, 0
            for name, p in params.items():
                stepped[name] = p - lr * g[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
            with torch.no_grad():
                changes[start + i] = (adapter.example_losses(SubstitutedModule(model, stepped), ref).double() - base).numpy()
    return changes


def probe_label_batches(adapter: ModelAdapter, model: nn.Module, candidates: pl.DataFrame,
                        reference_batches: list[pl.DataFrame], *, lr: float, batch_size: int = 16) -> np.ndarray:
    """``[n_candidates, n_batches]``: change of each reference batch's mean loss after one SGD step of size ``lr``
    on each candidate alone (one stepped forward pass over all batches together)."""
    if not reference_batches or any(b.height == 0 for b in reference_batches):
        raise DataContractError("probe oracle: every reference batch needs at least one row")
    changes = probe_loss_changes(adapter, model, candidates, pl.concat([b.select("text") for b in reference_batches]),
                                 lr=lr, batch_size=batch_size)
    return batch_means(changes, [b.height for b in reference_batches])


def batch_means(changes: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Mean of consecutive column groups of ``sizes`` (per-reference-row changes -> per-batch labels)."""
    bounds = np.cumsum([0, *sizes])
    return np.stack([changes[:, a:b].mean(1) for a, b in pairwise(bounds)], axis=1)


def oracle_reliability(labels_by_batch: np.ndarray) -> dict[str, float]:
    """Test-retest figures of a probe oracle from its per-reference-batch labels ``[n, b]`` (b >= 2).

    - ``single_batch``: mean Spearman between the labels of two different single batches (the reliability of an
      oracle probed against one batch);
    - ``split_half``: Spearman between the mean label over the first and over the second half of the batches;
    - ``full``: the Spearman-Brown reliability of the mean over all batches, ``2 r / (1 + r)`` with r = split_half;
    - ``ceiling``: ``sqrt(full)``, the Spearman a perfect predictor of the noise-free score would reach against
      the all-batch oracle (the correlation of a score with its own noisy measurement).
    """
    n_batches = labels_by_batch.shape[1]
    if n_batches < 2:
        raise DataContractError("oracle reliability needs labels from at least two reference batches")
    pairs = [float(spearmanr(labels_by_batch[:, i], labels_by_batch[:, j]).statistic)
             for i in range(n_batches) for j in range(i + 1, n_batches)]
    half = n_batches // 2
    r = float(spearmanr(labels_by_batch[:, :half].mean(1), labels_by_batch[:, half:2 * half].mean(1)).statistic)
    full = 2 * r / (1 + r) if r > -1 else float("nan")
    return {"single_batch": float(np.mean(pairs)), "split_half": r, "full": full,
            "ceiling": float(np.sqrt(max(full, 0.0)))}
