"""Kronecker-factored (LoGra-style) random projection of per-example gradients of ``nn.Linear`` layers.

For a Linear layer with inputs ``a_t`` (extended by a constant 1 when the layer has a bias) and output gradients
``g_t`` at positions ``t`` (one position for an MLP, the tokens of a sequence for a transformer), one example's
weight gradient is ``G = sum_t g_t a_t^T`` (``d_out x d_in``). Projecting it with ``P_out`` (``k_out x d_out``) and
``P_in`` (``k_in x d_in``) gives::

    vec(P_out G P_in^T) = (P_out (x) P_in) vec(G) = vec(sum_t (P_out g_t)(P_in a_t)^T)      (row-major vec)

so each example's ``k_out * k_in`` features come from the layer's activations and output gradients of one
ordinary forward and backward pass of the batch (hooks), with no per-example gradient and no ``[batch, n_params]``
matrix ever built. That is what makes it much faster than projecting materialised gradients.

Width rule (``ProjectionConfig(kind="kronecker", dim=D)``): the ``L`` tracked layers share the budget ``D``
equally, ``b = D // L`` each; a layer's block is ``k_out x k_in`` with ``k_out = min(d_out, isqrt(b))`` and
``k_in = min(d_in, b // k_out)`` (``d_in`` and ``k_in`` count the bias column), so the feature width is at most
``D`` (each layer needs ``b >= 2``). A side whose ``k`` equals its ``d`` is left unprojected (identity: exact and
cheaper). Blocks are concatenated in the order of the tracked modules; within a block, features are
``P_out G P_in^T`` flattened row-major.

``P_out`` has i.i.d. N(0, 1/k_out) entries. ``P_in`` is block-diagonal ``diag(R, 1)`` when the layer has a bias:
the constant input 1 is kept exactly (it often carries much of ``||[a; 1]||^2``, e.g. half of it for unit-norm
inputs, and would otherwise add its share of sketch noise) and ``R`` (``k_in - 1 x d_in - 1``) is N(0, 1/(k_in - 1));
without a bias ``P_in`` is N(0, 1/k_in). Either way ``E[P^T P] = I`` on each side, so
``E[<Pi x, Pi y>] = <x, y>`` for ``Pi = P_out (x) P_in``. Each random block is a pure function of (seed, module
name, layer shape, k, side): the same seed gives the same features in every process, and layers of equal shape
still get independent sketches. Per-example independence of the output gradients holds for models without
batch-coupling layers (no batch statistics), as for ``curation.gradients.ghost``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from curation.errors import CurationError
from curation.gradients.linear_capture import LinearCapture
from curation.gradients.projection import ProjectionConfig
from curation.models.base import Batch

OutputFn = Callable[[nn.Module, Batch], torch.Tensor]


def kronecker_dims(d_in: int, d_out: int, budget: int) -> tuple[int, int]:
    """``(k_in, k_out)`` of one layer's block for a per-layer budget of ``budget`` features (see module doc).

    For ``budget >= 2``, ``k_in >= min(d_in, 2)``: a layer with a bias always keeps at least one random row.
    """
    if budget < 2:
        raise ValueError(f"per-layer budget must be at least 2, got {budget}")
    k_out = min(d_out, math.isqrt(budget))
    return min(d_in, budget // k_out), k_out


def factor_matrix(
    k: int, d: int, *, seed: int, module: str, shape: tuple[int, int], side: str, keep_last: bool = False
) -> torch.Tensor | None:
    """``[k, d]`` factor (float64): N(0, 1/k) entries, or with ``keep_last`` the block-diagonal ``diag(R, 1)`` with
    ``R`` of shape ``[k - 1, d - 1]`` and N(0, 1/(k - 1)) entries; ``None`` (identity) when ``k == d``."""
    if k == d:
        return None
    name = int.from_bytes(hashlib.sha256(module.encode()).digest()[:4], "little")
    words = [seed, name, shape[0], shape[1], k, 0 if side == "in" else 1, 0x6B726F6E]
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(words).generate_state(1)[0]))
    rows, cols = (k - 1, d - 1) if keep_last else (k, d)
    block = torch.randn(rows, cols, generator=gen, dtype=torch.float64) / math.sqrt(rows)
    if not keep_last:
        return block
    full = torch.zeros(k, d, dtype=torch.float64)
    full[:rows, :cols] = block
    full[rows, cols] = 1.0
    return full


@dataclass(frozen=True)
class KroneckerLayer:
    """One tracked Linear layer's factors; ``d_in`` includes the bias column when ``bias``."""

    name: str
    d_in: int
    d_out: int
    bias: bool
    p_in: torch.Tensor | None
    p_out: torch.Tensor | None

    @property
    def k_in(self) -> int:
        return self.d_in if self.p_in is None else self.p_in.shape[0]

    @property
    def k_out(self) -> int:
        return self.d_out if self.p_out is None else self.p_out.shape[0]

    def project(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``[B, k_out * k_in]`` features from inputs ``a [B, T, d_in]`` (with the bias column of ones last when the
        layer has a bias, as ``LinearCapture`` gives them) and output gradients ``g [B, T, d_out]``."""
        dtype = g.dtype
        if self.p_in is None:
            pa = a
        elif self.bias:  # diag(R, 1) [a; 1] = [R a; 1]
            pa = torch.cat([a[..., :-1] @ self.p_in[:-1, :-1].to(dtype).T, a[..., -1:]], dim=-1)
        else:
            pa = a @ self.p_in.to(dtype).T
        pg = g if self.p_out is None else g @ self.p_out.to(dtype).T
        if pa.shape[1] == 1:
            block = pg[:, 0, :, None] * pa[:, 0, None, :]
        else:
            block = torch.bmm(pg.transpose(1, 2), pa)
        return block.reshape(block.shape[0], -1)


class KroneckerProjector:
    """Kronecker-factored projector for the named ``nn.Linear`` modules of a model (any checkpoint of it)."""

    def __init__(self, model: nn.Module, modules: Sequence[str], config: ProjectionConfig) -> None:
        if config.kind != "kronecker":
            raise ValueError(f"KroneckerProjector needs kind='kronecker', got {config.kind!r}")
        named = dict(model.named_modules())
        if not modules:
            raise CurationError("kronecker projection: no tracked modules")
        for name in modules:
            if not isinstance(named.get(name), nn.Linear):
                found = type(named[name]).__name__ if name in named else "no such module"
                raise CurationError(f"module '{name}': kronecker projection supports nn.Linear modules only ({found}); "
                                    "use projection kind gaussian, rademacher or sjlt")
        budget = config.dim // len(modules)
        if budget < 2:
            raise CurationError(f"projection dim={config.dim}: kronecker needs at least 2 per tracked layer "
                                f"({len(modules)} layers)")
        self.config = config
        self.layers: list[KroneckerLayer] = []
        for name in modules:
            lin: nn.Linear = named[name]
            bias = lin.bias is not None
            d_in, d_out = lin.in_features + int(bias), lin.out_features
            k_in, k_out = kronecker_dims(d_in, d_out, budget)
            shape = (d_out, d_in)
            self.layers.append(KroneckerLayer(
                name=name, d_in=d_in, d_out=d_out, bias=bias,
                p_in=factor_matrix(k_in, d_in, seed=config.seed, module=name, shape=shape, side="in", keep_last=bias),
                p_out=factor_matrix(k_out, d_out, seed=config.seed, module=name, shape=shape, side="out"),
            ))
        self.dim = sum(layer.k_in * layer.k_out for layer in self.layers)

    def features(self, model: nn.Module, batch: Batch, fn: OutputFn) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features [B, dim], values [B])`` of ``fn`` (per-example loss, measurement or margin) on ``batch``.

        One forward pass records each tracked layer's inputs and outputs, one backward pass of ``sum(values)``
        gives the output gradients; the model is put in eval mode as for ``per_example_gradients``.
        """
        model.eval()
        names = [layer.name for layer in self.layers]
        with LinearCapture(model, names, purpose="kronecker projection") as capture, torch.enable_grad():
            values = fn(model, batch)
            captured = capture.activations_and_grads(values.sum())
        blocks = [layer.project(*captured[layer.name]) for layer in self.layers]
        return torch.cat(blocks, dim=1), values.detach()
