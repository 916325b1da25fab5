"""Per-example gradients with ``torch.func`` (vmap over grad), restricted to the adapter's tracked modules.

The adapter's ``example_losses`` / ``measurement`` are reused unchanged: each example is presented to it as a
batch of one through a functional stand-in for the model, so any adapter works without gradient-specific code.
Models whose forward branches on tensor values (Hugging Face transformers' attention-mask code) cannot be
vmapped; for them the same ``torch.func.grad`` runs one example at a time (same result, slower).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from curation.models.base import Batch, ModelAdapter


def tracked_parameters(model: nn.Module, modules: Sequence[str]) -> dict[str, torch.Tensor]:
    """Parameters (name -> tensor, detached) that belong to the named modules, in ``named_parameters`` order."""
    prefixes = tuple(f"{m}." for m in modules)
    params = {n: p.detach() for n, p in model.named_parameters() if n.startswith(prefixes) or n in modules}
    if not params:
        raise ValueError(f"no parameters found under modules {list(modules)[:5]}")
    return params


class SubstitutedModule(nn.Module):
    """Calls ``model`` with substituted parameters so the adapter can treat it as an ordinary module."""

    def __init__(self, model: nn.Module, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        object.__setattr__(self, "inner", model)
        object.__setattr__(self, "params", params)

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        return functional_call(self.inner, self.params, args, kwargs)


def per_example_gradients(
    adapter: ModelAdapter,
    model: nn.Module,
    batch: Batch,
    *,
    modules: Sequence[str] | None = None,
    target: Literal["loss", "measurement"] | Callable[[nn.Module, Batch], torch.Tensor] = "loss",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Flattened gradient of each example's loss (or measurement): shape ``[batch, n_tracked_params]``.

    ``modules`` defaults to ``adapter.tracked_modules(model)``; parameters outside them are held fixed.
    ``target`` may also be a callable ``(model, batch) -> [batch]`` (e.g. TRAK's classification margin).
    """
    model.eval()
    names = list(modules) if modules is not None else adapter.tracked_modules(model)
    params = tracked_parameters(model, names)
    if callable(target):
        fn = target
    else:
        fn = adapter.example_losses if target == "loss" else adapter.measurement

    def single(p: dict[str, torch.Tensor], example: Batch) -> torch.Tensor:
        one = {k: v.unsqueeze(0) for k, v in example.items()}
        return fn(SubstitutedModule(model, p), one)[0]

    try:
        grads = vmap(grad(single), in_dims=(None, 0), chunk_size=chunk_size)(params, batch)
    except RuntimeError as exc:
        if not _vmap_unsupported(exc):
            raise
        # the model's forward branches on tensor values (e.g. transformers' attention-mask handling), which vmap
        # cannot batch: the same gradient one example at a time
        size = len(next(iter(batch.values())))
        rows = [grad(single)(params, {k: v[i] for k, v in batch.items()}) for i in range(size)]
        grads = {n: torch.stack([row[n] for row in rows]) for n in params}
    return torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in params], dim=1)


def _vmap_unsupported(exc: RuntimeError) -> bool:
    """Whether ``exc`` is vmap refusing the model (``.item()`` or data-dependent control flow), not a model error."""
    text = str(exc)
    return text.startswith("vmap:") or "data-dependent control flow" in text
