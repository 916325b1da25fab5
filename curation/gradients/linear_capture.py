"""Capture what Kronecker-factored methods need from ``nn.Linear`` layers: each layer's input activations and
the gradient of a loss with respect to its output (the pre-activation pseudo-gradient ``s``). EK-FAC curvature,
ghost gradient norms and the Kronecker (LoGra-style) projection all read their layers through this one class.

For one example the weight gradient of a linear layer is ``Σ_t s_t a_tᵀ`` (sum over tokens for sequences; the
input is extended by a constant 1 when the layer has a bias, so the bias gradient is the last column). Capturing
``a`` and ``s`` instead of weight gradients lets callers form Kronecker factors, rotate into their eigenbases and
take per-example dot products without ever materialising gradients of the whole model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import torch
from torch import nn

from curation.errors import CurationError


class LinearCapture:
    """Context manager: hooks the named ``nn.Linear`` modules of ``model`` during forward passes."""

    def __init__(self, model: nn.Module, names: Sequence[str], *, purpose: str = "EK-FAC") -> None:
        self.purpose = purpose
        found = dict(model.named_modules())
        self.modules: dict[str, nn.Linear] = {}
        for name in names:
            module = found.get(name)
            if not isinstance(module, nn.Linear):
                raise CurationError(f"module '{name}': {purpose} supports nn.Linear modules only "
                                    f"(got {type(module).__name__ if module is not None else 'nothing'})")
            self.modules[name] = module
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._saved_flags: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> Self:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
            self._saved_flags.append((module.weight, module.weight.requires_grad))
            module.weight.requires_grad_(True)  # outputs must be part of the autograd graph
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        for param, flag in self._saved_flags:
            param.requires_grad_(flag)
        self._handles.clear()
        self._saved_flags.clear()
        self.inputs.clear()
        self.outputs.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if name in self.outputs:
                raise CurationError(f"module '{name}' is called more than once per forward pass; "
                                    f"{self.purpose} needs each tracked Linear to be used once")
            self.inputs[name] = args[0].detach()
            self.outputs[name] = out
        return hook

    def activations_and_grads(
        self, loss: torch.Tensor, *, retain_graph: bool = False
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (a [B, T, in(+1)], s [B, T, out])}`` for the last forward; ``loss`` is a sum over examples."""
        names = list(self.modules)
        missing = [n for n in names if n not in self.outputs]
        if missing:
            raise CurationError(f"modules {missing[:3]} were not called in the forward pass")
        grads = torch.autograd.grad(loss, [self.outputs[n] for n in names], retain_graph=retain_graph,
                                    allow_unused=True)
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, g in zip(names, grads, strict=True):
            a = self.inputs[name]
            batch = a.shape[0]
            a = a.reshape(batch, -1, a.shape[-1])
            if self.modules[name].bias is not None:
                a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
            s = torch.zeros_like(self.outputs[name]) if g is None else g.detach()
            out[name] = (a, s.reshape(batch, -1, s.shape[-1]))
        self.inputs.clear()
        self.outputs.clear()
        return out
