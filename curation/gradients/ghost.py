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
    """Squared norm of each example's gradient of ``loss_fn`` over the named Linear modules, shape ``[batch]``."""
    named = dict(model.named_modules())
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def capture(name: str) -> Callable:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if name in outputs:
                raise RuntimeError(f"module {name} ran twice in one forward pass; ghost norms do not apply")
            inputs[name], outputs[name] = args[0].detach(), out

        return hook

    handles = [named[m].register_forward_hook(capture(m)) for m in modules]
    try:
        with torch.enable_grad():
            losses = loss_fn(model, batch)
            grads = torch.autograd.grad(losses.sum(), [outputs[m] for m in modules])
    finally:
        for h in handles:
            h.remove()
    total = torch.zeros(losses.shape[0], dtype=torch.float64)
    for m, d in zip(modules, grads):
        a = inputs[m]
        a3 = a.reshape(a.shape[0], -1, a.shape[-1]).double()
        d3 = d.reshape(d.shape[0], -1, d.shape[-1]).double()
        if a3.shape[1] == 1:
            total += (a3[:, 0] ** 2).sum(-1) * (d3[:, 0] ** 2).sum(-1)
        else:
            total += (torch.bmm(a3, a3.transpose(1, 2)) * torch.bmm(d3, d3.transpose(1, 2))).sum((1, 2))
        if named[m].bias is not None:
            total += (d3.sum(1) ** 2).sum(-1)
    return total
