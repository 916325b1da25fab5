"""Per-example gradients of ``nn.Linear`` layers, produced coordinate-major (``[rows, batch]`` blocks of the
``[n_params, batch]`` matrix) from one batched forward/backward pass.

A sparse projection reads every gradient coordinate once per stored non-zero; its fastest CPU kernel (a CSC
matrix times a dense block, ``Projector.project_blocks``) wants each coordinate's ``batch`` values contiguous.
``torch.func`` per-example gradients come example-major (``[batch, n_params]``), from a slow vmap, and at a million
parameters the full matrix is half a gigabyte per 128 examples -- writing and re-reading it is what costs. For
Linear layers the per-example weight gradient is ``sum_t s_t a_t^T`` (``LinearCapture``: inputs ``a`` with a
trailing 1 for the bias, output gradients ``s``), so blocks of a few thousand coordinates are built on demand as
broadcast products into one cache-sized buffer and projected at once; the full matrix never exists. Rows follow
the flattening order of ``per_example_gradients`` (per module: weight row-major, then bias). Per-example
independence holds for models without batch-coupling layers, as for the ghost norms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from curation.gradients.linear_capture import LinearCapture
from curation.models.base import Batch

BLOCK_COORDS = 4096  # coordinates per block: [4096, 128] float32 = 2 MiB, stays in cache between write and read


def linear_gradient_blocks(
    model: nn.Module, batch: Batch, fn: Callable[[nn.Module, Batch], torch.Tensor], modules: Sequence[str],
    block_coords: int = BLOCK_COORDS,
) -> tuple[Iterator[tuple[int, torch.Tensor]], torch.Tensor]:
    """``(blocks, values [B])``: ``blocks`` yields ``(first_row, grads [rows, B])`` covering the per-example
    gradients of ``fn`` over the named Linear modules in order; a yielded block is overwritten by the next one."""
    model.eval()
    with LinearCapture(model, list(modules), purpose="coordinate-major gradients") as capture, torch.enable_grad():
        values = fn(model, batch)
        captured = capture.activations_and_grads(values.sum())
    biased = {name: capture.modules[name].bias is not None for name in modules}

    def blocks() -> Iterator[tuple[int, torch.Tensor]]:
        row = 0
        buffer: torch.Tensor | None = None
        for name in modules:
            a, s = captured[name]  # [B, T, in(+1)], [B, T, out]
            d_in, d_out, n = a.shape[-1] - int(biased[name]), s.shape[-1], a.shape[0]
            if a.shape[1] == 1:
                at, st = a[:, 0, :d_in].T.contiguous(), s[:, 0].T.contiguous()  # [in, B], [out, B]
            else:
                at, st = None, s.sum(1).T.contiguous()
            per = max(1, block_coords // d_in)  # output rows of the weight per block
            for o in range(0, d_out, per):
                rows = min(per, d_out - o)
                if at is not None:
                    if buffer is None or buffer.numel() < rows * d_in * n or buffer.dtype != at.dtype:
                        buffer = torch.empty(max(per, 1) * d_in * n, dtype=at.dtype)
                    view = buffer[: rows * d_in * n].view(rows, d_in, n)
                    torch.mul(st[o : o + rows, None, :], at[None], out=view)
                    yield row, view.view(rows * d_in, n)
                else:
                    yield row, torch.einsum("bto,bti->oib", s[..., o : o + rows], a[..., :d_in]).reshape(-1, n)
                row += rows * d_in
            if biased[name]:
                yield row, st
                row += d_out

    return blocks(), values.detach()
