"""The training objective as a function of the tracked parameters: flat gradients, Hessian-vector products and
the explicit Hessian that influence functions need.

``curvature`` selects the matrix: the true Hessian (``hessian``), or the Gauss-Newton matrix of softmax
cross-entropy (``gauss_newton``, ``Jᵀ (diag p − p pᵀ) J`` through the logits: always positive semi-definite, so
damped CG and LiSSA are well posed on non-convex models; equal to the Hessian for a linear model).

The objective is the *mean* per-example training loss of the adapter over the training table; damping (added by
the solvers) plays the role of an L2 term, so for an L2-regularised model with strength ``λ`` (objective
``mean loss + λ/2 ||θ||²``) a damping of ``λ`` gives that objective's exact Hessian. Parameters outside the
tracked modules are held fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import polars as pl
import torch
from torch import nn
from torch.func import grad, jvp, vjp, vmap

from curation.attribution.fisher import softmax_outputs
from curation.gradients import per_example_gradients, tracked_parameters
from curation.gradients.per_example import SubstitutedModule
from curation.models.base import Batch, ModelAdapter
from curation.progress import progress_bar


class TrainingObjective:
    """Mean training loss over ``frame`` as a function of the flattened tracked parameters ``θ``."""

    def __init__(
        self,
        adapter: ModelAdapter,
        model: nn.Module,
        frame: pl.DataFrame,
        modules: Sequence[str],
        batch_size: int,
        curvature: Literal["hessian", "gauss_newton"] = "hessian",
    ) -> None:
        model.eval()
        self.curvature = curvature
        self.adapter, self.model, self.modules = adapter, model, list(modules)
        params = tracked_parameters(model, self.modules)
        self.names = list(params)
        self.shapes = [params[n].shape for n in self.names]
        self.theta = torch.cat([params[n].reshape(-1) for n in self.names])
        self.n = frame.height
        self.batches: list[Batch] = [
            adapter.collate(frame[i : i + batch_size]) for i in range(0, frame.height, batch_size)
        ]

    @property
    def dim(self) -> int:
        """Number of tracked parameters."""
        return self.theta.numel()

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat vector -> ``{name: tensor}`` in the tracked parameters' shapes."""
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = shape.numel()
            out[name] = theta[start : start + size].view(shape)
            start += size
        return out

    def batch_loss_sum(self, theta: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Sum of per-example losses of ``batch`` at parameters ``theta``."""
        return self.adapter.example_losses(SubstitutedModule(self.model, self.unflatten(theta)), batch).sum()

    def hvp(self, vectors: torch.Tensor) -> torch.Tensor:
        """``H @ vectors`` for ``vectors`` of shape ``[P, k]``, H = Hessian of the mean loss (forward-over-reverse)."""
        return self.hvp_on(vectors, self.batches) / self.n

    def hvp_on(self, vectors: torch.Tensor, batches: Sequence[Batch]) -> torch.Tensor:
        """Sum over ``batches`` of the curvature of the summed loss times ``vectors`` (``[P, k]``)."""
        out = torch.zeros_like(vectors)
        for batch in batches:
            if self.curvature == "gauss_newton":
                out += self._ggn_batch(vectors, batch)
                continue
            g = grad(lambda t, b=batch: self.batch_loss_sum(t, b))
            one = lambda v, g=g: jvp(g, (self.theta,), (v,))[1]
            out += vmap(one, in_dims=1, out_dims=1)(vectors)
        return out

    def _ggn_batch(self, vectors: torch.Tensor, batch: Batch) -> torch.Tensor:
        def outputs(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, weights = softmax_outputs(self.adapter, SubstitutedModule(self.model, self.unflatten(theta)), batch)
            return logits, weights.detach()

        logits, pullback, weights = vjp(outputs, self.theta, has_aux=True)
        p = torch.softmax(logits.detach(), dim=-1)

        def one(v: torch.Tensor) -> torch.Tensor:
            jv = jvp(lambda t: outputs(t)[0], (self.theta,), (v,))[1]
            hjv = p * jv - p * (p * jv).sum(-1, keepdim=True)
            return pullback((weights.unsqueeze(-1) * hjv).to(logits.dtype))[0]

        return vmap(one, in_dims=1, out_dims=1)(vectors)

    def hessian(self, chunk: int = 256) -> torch.Tensor:
        """Explicit ``[P, P]`` Hessian of the mean loss, built from HVPs with unit vectors in column chunks."""
        p = self.dim
        h = torch.empty(p, p, dtype=self.theta.dtype)
        with progress_bar(total=p, description="explicit Hessian") as advance:
            for start in range(0, p, chunk):
                stop = min(p, start + chunk)
                eye = torch.zeros(p, stop - start, dtype=self.theta.dtype)
                eye[torch.arange(start, stop), torch.arange(stop - start)] = 1.0
                h[:, start:stop] = self.hvp(eye)
                advance(stop - start)
        return 0.5 * (h + h.T)


def example_gradients(
    adapter: ModelAdapter,
    model: nn.Module,
    frame: pl.DataFrame,
    modules: Sequence[str],
    *,
    target: str,
    batch_size: int,
    description: str = "per-example gradients",
) -> torch.Tensor:
    """``[n, P]`` flattened per-example gradients of the loss (``target='loss'``) or the measurement."""
    chunks = []
    with progress_bar(total=frame.height, description=description) as advance:
        for i in range(0, frame.height, batch_size):
            part = frame[i : i + batch_size]
            chunks.append(per_example_gradients(adapter, model, adapter.collate(part), modules=modules,
                                                target=target))  # type: ignore[arg-type]
            advance(part.height)
    return torch.cat(chunks)
