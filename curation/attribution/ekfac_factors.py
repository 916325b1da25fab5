"""Eigenvalue-corrected Kronecker factors (EK-FAC, Grosse et al. 2023) of the Fisher of ``nn.Linear`` layers.

Per layer with inputs ``a`` (plus a constant 1 for the bias) and output gradients ``s``:
1. uncentred covariances ``A = E[a aᵀ]`` (over tokens that carry gradient) and ``S = E[s sᵀ]``;
2. eigendecompositions (float64) ``A = Q_A Λ_A Q_Aᵀ``, ``S = Q_S Λ_S Q_Sᵀ``;
3. eigenvalue correction ``Λ[i, j] = mean_z (Q_Sᵀ DW(z) Q_A)[i, j]²`` over per-example gradients
   ``DW(z) = Σ_t s_t a_tᵀ`` (a second pass with freshly sampled labels);
so that ``(F + λI)⁻¹ V = Q_S [(Q_Sᵀ V Q_A) ⊘ (Λ + λ)] Q_Aᵀ``. Everything downstream works in the rotated basis:
a gradient is rotated once, divided elementwise, and dotted with rotated gradients. Tokens whose output gradient
is exactly zero in every unit (padding after the end of a text) are left out of ``A``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl
import torch
from torch import nn

from curation.attribution.fisher import sampled_example_losses
from curation.gradients.linear_capture import LinearCapture
from curation.models.base import Batch, ModelAdapter
from curation.progress import progress_bar

_CHUNK_ELEMENTS = 1 << 24  # per-example gradients materialised at once for sequences (64 MB in float32)


def _chunks(n: int, per_example: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(per_example, 1))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


@dataclass
class LayerFactors:
    """Eigenbases of one layer's Kronecker factors and its corrected eigenvalues ``[out, in(+1)]``."""

    q_a: torch.Tensor
    q_s: torch.Tensor
    eigenvalues: torch.Tensor

    def rotate_inputs(self, a: torch.Tensor) -> torch.Tensor:
        """``a Q_A`` for ``a`` of shape ``[B, T, in]``."""
        return a @ self.q_a

    def rotate_output_grads(self, s: torch.Tensor) -> torch.Tensor:
        """``s Q_S`` for ``s`` of shape ``[B, T, out]``."""
        return s @ self.q_s

    def rotated_gradients(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Per-example ``Q_Sᵀ (Σ_t s_t a_tᵀ) Q_A``, shape ``[B, out, in]`` (materialised: use for small batches)."""
        return torch.einsum("bto,bti->boi", self.rotate_output_grads(s), self.rotate_inputs(a))

    def squared_rotated_sum(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``Σ_b (Q_Sᵀ DW_b Q_A)²`` in float64, shape ``[out, in]``.

        With one position per example the rotated gradient is the outer product ``s̃ ã ᵀ``, so the sum of squares
        is ``(s̃²)ᵀ (ã²)``: no per-example gradient is ever formed. Sequences are processed in bounded chunks.
        """
        ss, sa = self.rotate_output_grads(s), self.rotate_inputs(a)
        if ss.shape[1] == 1:
            return ss[:, 0].double().square().T @ sa[:, 0].double().square()
        total = torch.zeros(ss.shape[-1], sa.shape[-1], dtype=torch.float64, device=ss.device)
        for part in _chunks(ss.shape[0], ss.shape[-1] * sa.shape[-1]):
            total += torch.einsum("bto,bti->boi", ss[part], sa[part]).square().sum(0, dtype=torch.float64)
        return total

    def scores(self, a: torch.Tensor, s: torch.Tensor, preconditioned: torch.Tensor) -> torch.Tensor:
        """``[B, Q]`` dot products of each example's rotated gradient with rotated preconditioned queries
        ``[Q, out, in]``. One position: ``((s̃ P_q) · ã)`` as a single matrix product, no per-example gradients."""
        ss, sa = self.rotate_output_grads(s), self.rotate_inputs(a)
        q, out, inp = preconditioned.shape
        if ss.shape[1] == 1:
            left = ss[:, 0] @ preconditioned.permute(1, 0, 2).reshape(out, q * inp)  # [B, Q*in]
            return (left.view(-1, q, inp) * sa[:, 0].unsqueeze(1)).sum(-1)
        flat = preconditioned.reshape(q, -1).T
        return torch.cat([torch.einsum("bto,bti->boi", ss[part], sa[part]).reshape(part.stop - part.start, -1)
                          @ flat for part in _chunks(ss.shape[0], out * inp)])

    def self_scores(self, a: torch.Tensor, s: torch.Tensor, inverse_eigenvalues: torch.Tensor) -> torch.Tensor:
        """``[B]`` values of ``Σ_ij (Q_Sᵀ DW Q_A)²_ij · w_ij`` with ``w = 1/(Λ + λ)``."""
        ss, sa = self.rotate_output_grads(s), self.rotate_inputs(a)
        if ss.shape[1] == 1:
            return ((ss[:, 0].square() @ inverse_eigenvalues) * sa[:, 0].square()).sum(-1)
        return torch.cat([(torch.einsum("bto,bti->boi", ss[part], sa[part]).square() * inverse_eigenvalues)
                          .sum((1, 2)) for part in _chunks(ss.shape[0], ss.shape[-1] * sa.shape[-1])])

    def heuristic_damping(self) -> float:
        """The EK-FAC paper's default damping: 0.1 x the mean corrected eigenvalue."""
        return 0.1 * float(self.eigenvalues.mean())


@dataclass
class EKFACFactors:
    """Factors of every tracked layer (in tracking order) and the number of examples they were fitted on."""

    layers: dict[str, LayerFactors]
    n_examples: int


def _loss_sum(adapter: ModelAdapter, model: nn.Module, batch: Batch, fisher: str, gen: torch.Generator):
    if fisher == "sampled":
        return sampled_example_losses(adapter, model, batch, gen).sum()
    return adapter.example_losses(model, batch).sum()


def _batches(adapter: ModelAdapter, frame: pl.DataFrame, batch_size: int):
    for i in range(0, frame.height, batch_size):
        part = frame[i : i + batch_size]
        yield part.height, adapter.collate(part)


def fit_ekfac(
    adapter: ModelAdapter,
    model: nn.Module,
    frame: pl.DataFrame,
    modules: Sequence[str],
    *,
    batch_size: int,
    fisher: Literal["sampled", "empirical"] = "sampled",
    seed: int = 0,
) -> EKFACFactors:
    """Covariances, eigendecompositions and eigenvalue correction over ``frame`` (two passes)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    cov_a: dict[str, torch.Tensor] = {}
    cov_s: dict[str, torch.Tensor] = {}
    tokens: dict[str, float] = {}
    with LinearCapture(model, modules) as cap, progress_bar(total=frame.height, description="EK-FAC covariances") as adv:
        for size, batch in _batches(adapter, frame, batch_size):
            for name, (a, s) in cap.activations_and_grads(_loss_sum(adapter, model, batch, fisher, gen)).items():
                a, s = a.reshape(-1, a.shape[-1]).double(), s.reshape(-1, s.shape[-1]).double()
                keep = s.ne(0).any(-1)
                a = a[keep] if not bool(keep.all()) else a
                cov_a[name] = cov_a.get(name, 0) + a.T @ a
                cov_s[name] = cov_s.get(name, 0) + s.T @ s
                tokens[name] = tokens.get(name, 0.0) + float(a.shape[0])
            adv(size)
    layers: dict[str, LayerFactors] = {}
    for name, cov in cov_a.items():
        dtype = cap.modules[name].weight.dtype
        _, q_a = torch.linalg.eigh(cov / max(tokens[name], 1.0))
        _, q_s = torch.linalg.eigh(cov_s[name] / frame.height)
        layers[name] = LayerFactors(q_a=q_a.to(dtype), q_s=q_s.to(dtype), eigenvalues=torch.empty(0))
    lam: dict[str, torch.Tensor] = {}
    with LinearCapture(model, modules) as cap, progress_bar(total=frame.height, description="EK-FAC eigenvalues") as adv:
        for size, batch in _batches(adapter, frame, batch_size):
            for name, (a, s) in cap.activations_and_grads(_loss_sum(adapter, model, batch, fisher, gen)).items():
                lam[name] = lam.get(name, 0) + layers[name].squared_rotated_sum(a, s)
            adv(size)
    for name, layer in layers.items():
        layer.eigenvalues = (lam[name] / frame.height).to(layer.q_a.dtype)
    return EKFACFactors(layers=layers, n_examples=frame.height)
