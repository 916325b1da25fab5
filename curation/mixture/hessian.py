"""Inverse-Hessian approximations behind one small interface, for group influence.

``InverseHessian.solve(vectors)`` returns ``(H + λI)⁻¹ v`` for each row of ``vectors`` (flattened over the tracked
parameters, in ``named_parameters`` order, as ``curation.gradients`` flattens them). ``identity`` is the plain
gradient dot product (``H = I``); ``lissa`` runs the LiSSA recursion with exact Hessian-vector products (double
backprop) of the mean training loss over a fixed sample of training rows; ``ekfac`` applies the eigenvalue-corrected
Kronecker-factored Fisher fitted by ``curation.attribution.ekfac_factors.fit_ekfac`` (``nn.Linear`` modules only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from curation.errors import CurationError
from curation.gradients.per_example import tracked_parameters
from curation.models.base import ModelAdapter

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class HessianConfig:
    """Which inverse-Hessian approximation to use and its settings."""

    kind: str = field(default="identity", metadata={"help": "identity, lissa or ekfac"})
    damping: float = field(default=1e-3, metadata={"help": "λ added to the Hessian diagonal (lissa; ekfac: 0 = 0.1 x mean eigenvalue per layer)"})
    rows: int = field(default=128, metadata={"help": "training rows whose mean loss defines H (lissa, ekfac)"})
    lissa_steps: int = field(default=100, metadata={"help": "LiSSA recursion depth"})
    lissa_scale: float = field(default=0.0, metadata={"help": "LiSSA scale s (> largest eigenvalue); 0 = estimate by power iteration"})

    def __post_init__(self) -> None:
        if self.kind not in ("identity", "lissa", "ekfac"):
            raise ValueError(f"kind must be identity, lissa or ekfac, got {self.kind!r}")
        if self.damping < 0 or self.rows < 1 or self.lissa_steps < 1 or self.lissa_scale < 0:
            raise ValueError("damping and lissa_scale must be >= 0, rows and lissa_steps >= 1")


class InverseHessian(Protocol):
    """Applies an approximate inverse Hessian to flattened parameter vectors."""

    name: str

    def solve(self, vectors: torch.Tensor) -> torch.Tensor:
        """``[k, P] -> [k, P]``: ``(H + λI)⁻¹ v`` for each row ``v``."""


class IdentityHessian:
    """``H = I``: influence is the plain dot product of gradients (TracIn-style, first order)."""

    name = "identity"

    def solve(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors


class HVP:
    """Exact Hessian-vector products of the mean loss over ``frame`` w.r.t. the tracked parameters."""

    def __init__(self, adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, modules: Sequence[str]) -> None:
        self.adapter, self.model = adapter, model
        self.batch = adapter.collate(frame)
        all_params = dict(model.named_parameters())
        self.params = [all_params[n] for n in tracked_parameters(model, modules)]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        with sdpa_kernel(SDPBackend.MATH):  # fused CPU attention kernels have no double backward
            loss = self.adapter.example_losses(self.model, self.batch).mean()
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        hv = torch.autograd.grad(flat @ v.to(flat.dtype), self.params)
        return torch.cat([h.reshape(-1) for h in hv]).detach()


class LiSSAHessian:
    """LiSSA: ``h ← v + h − (H + λI) h / s`` for ``steps`` iterations, returning ``h / s``.

    Converges when ``s`` exceeds the largest eigenvalue of ``H + λI`` and ``H + λI`` is positive definite; ``s``
    defaults to 1.2 × a power-iteration estimate of the largest eigenvalue magnitude.
    """

    name = "lissa"

    def __init__(self, hvp: HVP, *, damping: float, steps: int, scale: float = 0.0) -> None:
        self.hvp, self.damping, self.steps = hvp, damping, steps
        self.scale = scale or 1.2 * (self.top_eigenvalue() + damping)

    def top_eigenvalue(self, iterations: int = 20) -> float:
        """Largest |eigenvalue| of H by power iteration."""
        n = sum(p.numel() for p in self.hvp.params)
        gen = torch.Generator().manual_seed(0)
        v = torch.randn(n, generator=gen, dtype=self.hvp.params[0].dtype)
        v /= v.norm()
        value = 0.0
        for _ in range(iterations):
            hv = self.hvp(v)
            value = float(hv.norm())
            if value == 0.0:
                break
            v = hv / value
        return value

    def solve(self, vectors: torch.Tensor) -> torch.Tensor:
        out = []
        for v in vectors:
            h = v.clone()
            for _ in range(self.steps):
                h = v + h - (self.hvp(h) + self.damping * h) / self.scale
            if not torch.isfinite(h).all():
                raise CurationError(
                    f"LiSSA diverged (scale {self.scale:.3g}, damping {self.damping}); raise hessian.damping"
                )
            out.append(h / self.scale)
        return torch.stack(out)


def make_inverse_hessian(
    cfg: HessianConfig, adapter: ModelAdapter, model: nn.Module, train_sample: pl.DataFrame, modules: Sequence[str]
) -> InverseHessian:
    """Build the configured approximation around ``model`` (``train_sample`` defines H for lissa / ekfac)."""
    if cfg.kind == "identity":
        return IdentityHessian()
    if cfg.kind == "lissa":
        return LiSSAHessian(HVP(adapter, model, train_sample, modules), damping=cfg.damping,
                            steps=cfg.lissa_steps, scale=cfg.lissa_scale)
    return EKFACHessian(adapter, model, train_sample, modules, damping=cfg.damping)


class EKFACHessian:
    """``(F + λI)⁻¹ v`` per ``nn.Linear`` layer in the EK-FAC eigenbasis: ``Q_S [(Q_Sᵀ V Q_A) ⊘ (Λ + λ)] Q_Aᵀ``."""

    name = "ekfac"

    def __init__(self, adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, modules: Sequence[str], *,
                 damping: float, batch_size: int = 32) -> None:
        from curation.attribution.ekfac_factors import fit_ekfac

        self.factors = fit_ekfac(adapter, model, frame, modules, batch_size=batch_size, fisher="empirical")
        self.damping = {n: damping or layer.heuristic_damping() for n, layer in self.factors.layers.items()}
        found = dict(model.named_modules())
        order = dict.fromkeys(p.rsplit(".", 1)[0] for p in tracked_parameters(model, modules))  # flattening order
        self.shapes = [(n, found[n].weight.shape, found[n].bias is not None) for n in order]

    def solve(self, vectors: torch.Tensor) -> torch.Tensor:
        out, offset = [], 0
        for name, (rows, cols), has_bias in self.shapes:
            width = rows * cols + (rows if has_bias else 0)
            block = vectors[:, offset : offset + width]
            offset += width
            v = block[:, : rows * cols].reshape(-1, rows, cols)
            if has_bias:
                v = torch.cat([v, block[:, rows * cols :].unsqueeze(-1)], dim=-1)
            layer = self.factors.layers[name]
            q_s, q_a = layer.q_s.to(v.dtype), layer.q_a.to(v.dtype)
            inner = (q_s.T @ v @ q_a) / (layer.eigenvalues.to(v.dtype) + self.damping[name])
            x = q_s @ inner @ q_a.T
            out.append(x[..., :cols].reshape(-1, rows * cols))
            if has_bias:
                out.append(x[..., cols])
        if offset != vectors.shape[1]:
            raise CurationError(f"EK-FAC covers {offset} parameters but the gradients have {vectors.shape[1]}")
        return torch.cat(out, dim=1)
