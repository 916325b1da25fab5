"""Exact per-example gradient norms for ``nn.Linear`` layers without materialising the gradients.

For a Linear layer with input ``a`` and output gradient ``d`` (per example, over positions ``t``), the weight
gradient is ``sum_t d_t a_t^T``, so its squared norm is ``sum_{t,t'} (a_t . a_t')(d_t . d_t')`` and the bias's is
``||sum_t d_t||^2``; with one position this is ``||a||^2 ||d||^2``. One ordinary forward and backward pass of the
batch gives every example's exact squared gradient norm (the "ghost norm" trick), which is all TracIn
self-influence needs: no vmap, no ``[batch, n_params]`` matrix, no projection.

It applies when every tracked parameter belongs to a tracked ``nn.Linear`` that runs once per forward pass and
examples do not interact inside the model (no batch statistics); ``ghost_applicable`` checks the first part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from curation.gradients.linear_capture import LinearCapture
from curation.models.base import Batch


def ghost_applicable(model: nn.Module, modules: Sequence[str]) -> bool:
    """Whether all named modules are ``nn.Linear`` (so their parameters are weights and biases of Linear maps)."""
    named = dict(model.named_modules())
    return bool(modules) and all(isinstance(named.get(m), nn.Linear) for m in modules)


def ghost_squared_norms(
    model: nn.Module,
    batch: Batch,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
    modules: Sequence[str],
) -> torch.Tensor:
    """Squared norm of each example's gradient of ``loss_fn`` over the named Linear modules, shape ``[batch]``.

    ``LinearCapture`` appends a constant 1 to a biased layer's input, so ``(a_t . a_t' + 1)(d_t . d_t')`` summed
    over positions already includes the bias term ``||sum_t d_t||^2``."""
    with LinearCapture(model, modules, purpose="ghost norms") as capture, torch.enable_grad():
        losses = loss_fn(model, batch)
        captured = capture.activations_and_grads(losses.sum())
    total = torch.zeros(losses.shape[0], dtype=torch.float64)
    for name in modules:
        a, d = (x.double() for x in captured[name])
        if a.shape[1] == 1:
            total += (a[:, 0] ** 2).sum(-1) * (d[:, 0] ** 2).sum(-1)
        else:
            total += (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(d, d.transpose(1, 2))).sum((1, 2))
    return total
