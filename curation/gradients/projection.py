"""Seeded random projections of gradient features: ``x -> x P`` with ``P`` of shape ``[p, k]``.

Gradients of even small models have millions of coordinates, so attribution methods store ``k``-dimensional
sketches instead. Every projector here satisfies ``E[<xP, yP>] = <x, y>`` (entries scaled by ``1/sqrt(k)``), is a
pure function of ``(p, k, seed, kind)`` -- the same seed gives the same matrix in every process, which train and
query features must share -- and works in row chunks of ``P`` so the full dense matrix never has to exist at once.

Kinds:
- ``gaussian`` / ``rademacher``: dense ``P`` with i.i.d. N(0, 1/k) or +-1/sqrt(k) entries, generated chunk by chunk
  from a per-chunk seed (cached while it fits ``cache_mb``).
- ``sjlt``: sparse Johnson-Lindenstrauss transform (count-sketch with ``s`` hashes per input coordinate, signs
  +-1/sqrt(s)); costs ``O(p s)`` memory and time per example instead of ``O(p k)``.
- ``identity``: no projection (``k = p``), for small models and exact ground-truth checks.
- ``kronecker``: LoGra-style ``P_out (x) P_in`` per ``nn.Linear`` layer, applied to layer activations and output
  gradients so per-example gradients are never built; ``dim`` is split over the layers (``k_out x k_in`` each,
  rule in ``curation.gradients.kronecker``). Not a ``Projector``: ``featurize`` uses ``KroneckerProjector``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

ProjectionKind = Literal["gaussian", "rademacher", "sjlt", "identity", "kronecker"]


@dataclass(frozen=True, kw_only=True)
class ProjectionConfig:
    """How gradients are sketched before they are stored."""

    kind: ProjectionKind = field(
        default="sjlt", metadata={"help": "gaussian | rademacher | sjlt | identity | kronecker"}
    )
    dim: int = field(default=1024, metadata={
        "help": "projected dimension k (ignored for identity; kronecker: total over layers, k_out x k_in each)"})
    seed: int = field(default=0, metadata={"help": "seed of the projection matrix (train and queries share it)"})
    sjlt_nnz: int = field(default=4, metadata={"help": "non-zeros per input coordinate for sjlt"})
    chunk_rows: int = field(default=65536, metadata={"help": "rows of P generated at a time (dense kinds)"})
    cache_mb: float = field(default=256.0, metadata={"help": "keep dense P in memory up to this size"})

    def __post_init__(self) -> None:
        if self.dim < 1 or self.sjlt_nnz < 1 or self.chunk_rows < 1:
            raise ValueError("dim, sjlt_nnz and chunk_rows must be positive")
        if self.kind == "sjlt" and self.sjlt_nnz > self.dim:
            raise ValueError(f"sjlt_nnz={self.sjlt_nnz} cannot exceed dim={self.dim}")


class Projector:
    """Projects ``[batch, p]`` gradients to ``[batch, k]`` (float32 unless the input is float64)."""

    def __init__(self, n_params: int, config: ProjectionConfig) -> None:
        if config.kind == "kronecker":
            raise ValueError("kind 'kronecker' projects from layer hooks: use curation.gradients.kronecker")
        self.n_params = int(n_params)
        self.config = config
        self.dim = self.n_params if config.kind == "identity" else config.dim
        self._cache: list[torch.Tensor] | None = None
        self._sparse: sp.csr_matrix | None = None
        self._sparse_cols: sp.csc_matrix | None = None
        self._views: dict[tuple[int, int], sp.csc_matrix] = {}

    def _chunk_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.config.seed, index, 0x7072]).generate_state(1)[0])

    def dense_chunk(self, index: int) -> torch.Tensor:
        """Rows ``[index * chunk_rows, ...)`` of ``P`` (float64 generation, deterministic per chunk)."""
        cfg = self.config
        start = index * cfg.chunk_rows
        rows = min(cfg.chunk_rows, self.n_params - start)
        gen = torch.Generator().manual_seed(self._chunk_seed(index))
        if cfg.kind == "gaussian":
            block = torch.randn(rows, cfg.dim, generator=gen, dtype=torch.float64)
        else:
            block = torch.randint(0, 2, (rows, cfg.dim), generator=gen, dtype=torch.int8).to(torch.float64) * 2 - 1
        return block / np.sqrt(cfg.dim)

    def _dense_chunks(self) -> list[torch.Tensor] | None:
        if self._cache is None and self.n_params * self.config.dim * 4 <= self.config.cache_mb * 2**20:
            n_chunks = -(-self.n_params // self.config.chunk_rows)
            self._cache = [self.dense_chunk(i).float() for i in range(n_chunks)]
        return self._cache

    def sparse_rows(self) -> sp.csr_matrix:
        """``P^T`` as a scipy CSR ``[k, p]`` matrix (sjlt): ``s`` distinct buckets per coordinate, signs
        +-1/sqrt(s), float32, column indices sorted within each row (the canonical, coalesced order)."""
        if self._sparse is None:
            cfg, p = self.config, self.n_params
            rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x736A]))
            buckets = _distinct_buckets(rng, p, cfg.dim, cfg.sjlt_nnz)
            signs = rng.integers(0, 2, size=(p, cfg.sjlt_nnz)).astype(np.float32) * 2 - 1
            cols = np.repeat(np.arange(p, dtype=np.int64), cfg.sjlt_nnz)
            mat = sp.csr_matrix((signs.reshape(-1) / np.float32(np.sqrt(cfg.sjlt_nnz)), (buckets.reshape(-1), cols)),
                                shape=(cfg.dim, p), dtype=np.float32)
            mat.sort_indices()
            self._sparse = mat
        return self._sparse

    def sparse_matrix(self) -> torch.Tensor:
        """``P^T`` as a torch sparse CSR ``[k, p]`` matrix (the same entries as ``sparse_rows``)."""
        mat = self.sparse_rows()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.from_numpy(mat.indptr.astype(np.int64)),
                                           torch.from_numpy(mat.indices.astype(np.int64)),
                                           torch.from_numpy(mat.data), size=mat.shape)

    def _columns(self) -> sp.csc_matrix:
        """``P^T`` in CSC form (built once; the CSR copy is released so only one copy stays in memory)."""
        if self._sparse_cols is None:
            cols = self.sparse_rows().tocsc()
            cols.sort_indices()
            self._sparse_cols, self._sparse = cols, None
        return self._sparse_cols

    def project_blocks(self, blocks: Iterable[tuple[int, torch.Tensor]], batch: int, *,
                       wide: bool = False) -> torch.Tensor:
        """sjlt of coordinate-major gradient blocks ``(first_row, [rows, batch])`` covering all ``p`` coordinates in
        order -> ``[batch, k]`` (float64 when ``wide``).

        scipy's CSC x dense kernel walks a block's coordinates in order and adds each one's contiguous ``batch``
        values into a ``[k, batch]`` accumulator; per output entry it sums in the same order as the CSR product,
        so the result equals ``sparse_matrix() @ grads.T`` up to the rounding of the accumulation (bit-identical
        when the whole matrix is one block), at a fraction of the cost of torch's CSR matmul on CPU.
        """
        if self.config.kind != "sjlt":
            raise ValueError(f"project_blocks is for kind 'sjlt', not {self.config.kind!r}")
        cols = self._columns()
        dtype = np.float64 if wide else np.float32
        out = np.zeros((self.dim, batch), dtype=dtype)
        covered = 0
        for start, block in blocks:
            stop = start + block.shape[0]
            if start != covered or stop > self.n_params:
                raise ValueError(f"gradient blocks must cover rows 0..{self.n_params} in order (got {start}:{stop})")
            part = self._views.get((start, stop)) if not wide else None
            if part is None:  # a view of the columns (shares data and indices with ``cols``)
                lo, hi = cols.indptr[start], cols.indptr[stop]
                part = sp.csc_matrix((cols.data[lo:hi].astype(dtype, copy=False), cols.indices[lo:hi],
                                      cols.indptr[start : stop + 1] - lo), shape=(self.dim, stop - start), copy=False)
                if not wide:
                    self._views[(start, stop)] = part
            out += part @ np.ascontiguousarray(block.detach().numpy(), dtype=dtype)
            covered = stop
        if covered != self.n_params:
            raise ValueError(f"projector built for {self.n_params} parameters, blocks covered {covered}")
        return torch.from_numpy(np.ascontiguousarray(out.T))

    def __call__(self, grads: torch.Tensor) -> torch.Tensor:
        """``grads @ P``; shape ``[batch, p] -> [batch, k]``."""
        if grads.shape[-1] != self.n_params:
            raise ValueError(f"projector built for {self.n_params} parameters, got {grads.shape[-1]}")
        kind = self.config.kind
        if kind == "identity":
            return grads
        dtype = grads.dtype
        if kind == "sjlt":
            wide = dtype == torch.float64
            coords = grads.detach().to(torch.float64 if wide else torch.float32).T
            return self.project_blocks([(0, coords)], grads.shape[0], wide=wide)
        chunks = self._dense_chunks()
        rows = self.config.chunk_rows
        out = torch.zeros(grads.shape[0], self.dim, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
        n_chunks = -(-self.n_params // rows)
        for i in range(n_chunks):
            block = chunks[i] if chunks is not None else self.dense_chunk(i).float()
            piece = grads[:, i * rows : (i + 1) * rows]
            out += piece.to(out.dtype) @ block.to(out.dtype)
        return out


def _distinct_buckets(rng: np.random.Generator, p: int, k: int, s: int) -> np.ndarray:
    """``[p, s]`` bucket indices in ``0..k-1``, distinct within each row (collisions are redrawn)."""
    if 2 * s > k:  # dense regime: take the first s of a random permutation per row
        return np.argsort(rng.random((p, k)), axis=1)[:, :s]
    buckets = rng.integers(0, k, size=(p, s))
    while True:
        srt = np.sort(buckets, axis=1)
        bad = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1)) if s > 1 else np.array([], dtype=int)
        if bad.size == 0:
            return buckets
        buckets[bad] = rng.integers(0, k, size=(bad.size, s))
