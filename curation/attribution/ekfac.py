"""Scorer ``ekfac``: influence functions with eigenvalue-corrected Kronecker-factored curvature.

``score(z, q) = ∇f(q)ᵀ (F + λI)⁻¹ ∇ℓ(z)`` summed over the tracked ``nn.Linear`` layers, with ``F`` the EK-FAC
approximation of the Fisher (see ``ekfac_factors``) at the final checkpoint; positive = helpful. Damping ``λ`` is
per layer: a fixed value, or (``damping: null``) the paper's ``0.1 x mean eigenvalue``.

Query batching: all queries are preconditioned once (in the factors' eigenbasis) and every training batch is
scored against all of them in one pass. With ``query_rank: r`` each preconditioned query gradient is stored as a
rank-``r`` factorisation per layer, so a sequence's score costs ``T·r·(in+out)`` instead of ``in·out`` per query.
With ``tfidf_top_n: N`` (text tables) only the ``N`` training rows most TF-IDF-similar to a query are scored for
it; the rest are NaN in the matrix, and self-influence is computed only for rows that are some query's candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from curation.attribution.base import ScoreResult, ScoringContext, SelfInfluenceFromScore
from curation.attribution.ekfac_factors import EKFACFactors, fit_ekfac
from curation.attribution.tfidf import tfidf_candidates
from curation.gradients.linear_capture import LinearCapture
from curation.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class EKFACConfig:
    """Settings of the EK-FAC influence function."""

    damping: float | None = field(
        default=None, metadata={"help": "λ per layer; null = 0.1 x mean corrected eigenvalue of that layer"}
    )
    fisher: Literal["sampled", "empirical"] = field(
        default="sampled", metadata={"help": "labels for the curvature: sampled from the model, or observed"}
    )
    query_rank: int | None = field(
        default=None, metadata={"help": "rank of the low-rank preconditioned query gradients (null = full)"}
    )
    tfidf_top_n: int | None = field(
        default=None, metadata={"help": "score only the N most TF-IDF-similar training rows per query (text)"}
    )
    self_influence: bool = field(default=True, metadata={"help": "also compute self-influence"})
    seed: int = field(default=0, metadata={"help": "seed for the sampled labels"})

    def __post_init__(self) -> None:
        if self.damping is not None and self.damping < 0:
            raise ValueError("damping must be >= 0 or null")
        if (self.query_rank is not None and self.query_rank < 1) or (
            self.tfidf_top_n is not None and self.tfidf_top_n < 1
        ):
            raise ValueError("query_rank and tfidf_top_n must be >= 1 or null")


@dataclass
class _Preconditioned:
    """Preconditioned rotated query gradients of one layer: dense ``[m, out, in]`` or factors ``U, V``."""

    dense: torch.Tensor | None
    u: torch.Tensor | None = None  # [m, out, r]
    v: torch.Tensor | None = None  # [m, in, r]


class EKFACInfluence(SelfInfluenceFromScore):
    """Scorer ``ekfac``."""

    name: ClassVar[str] = "ekfac"
    config_cls: ClassVar[type] = EKFACConfig

    def __init__(self, config: EKFACConfig | None = None) -> None:
        self.config = config or EKFACConfig()

    def fit(self, context: ScoringContext) -> EKFACFactors:
        """Fit the factors on the training table at the final checkpoint."""
        model = context.final_model
        return fit_ekfac(context.adapter, model, context.train, context.tracked(model),
                         batch_size=context.batch_size, fisher=self.config.fisher, seed=self.config.seed)

    def score(self, context: ScoringContext, factors: EKFACFactors | None = None) -> ScoreResult:
        """Scores of every (candidate) training row for every query, plus self-influence."""
        candidates = None
        rows = np.arange(context.train.height)
        if self.config.tfidf_top_n is not None:  # first, so a table without text fails before any fitting
            candidates = tfidf_candidates(context.train, context.queries, self.config.tfidf_top_n)
            rows = np.flatnonzero(candidates.any(1))
        factors = factors if factors is not None else self.fit(context)
        damping = {
            name: (self.config.damping if self.config.damping is not None else layer.heuristic_damping())
            for name, layer in factors.layers.items()
        }
        queries = self._precondition_queries(context, factors, damping)
        matrix, self_scores = self._score_rows(context, factors, damping, queries, rows)
        if candidates is not None:
            matrix[~candidates] = np.nan
        return ScoreResult(
            matrix=matrix, self_influence=self_scores, train_ids=context.train["example_id"].to_list(),
            query_ids=context.queries["example_id"].to_list(),
            extras={"damping": damping, "scored_rows": int(rows.size)},
        )

    def _precondition_queries(
        self, context: ScoringContext, factors: EKFACFactors, damping: dict[str, float]
    ) -> dict[str, _Preconditioned]:
        model, adapter = context.final_model, context.adapter
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in factors.layers}
        with LinearCapture(model, list(factors.layers)) as cap:
            for i in range(0, context.queries.height, context.batch_size):
                batch = adapter.collate(context.queries[i : i + context.batch_size])
                grads = cap.activations_and_grads(adapter.measurement(model, batch).sum())
                for name, (a, s) in grads.items():
                    layer = factors.layers[name]
                    parts[name].append(layer.rotated_gradients(a, s) / (layer.eigenvalues + damping[name]))
        out: dict[str, _Preconditioned] = {}
        rank = self.config.query_rank
        for name, chunks in parts.items():
            dense = torch.cat(chunks)
            if rank is None or rank > min(dense.shape[1:]):
                out[name] = _Preconditioned(dense=dense)
                continue
            u, sv, vh = torch.linalg.svd(dense, full_matrices=False)
            out[name] = _Preconditioned(dense=None, u=u[:, :, :rank] * sv[:, None, :rank],
                                        v=vh[:, :rank, :].transpose(1, 2))
        return out

    def _score_rows(
        self,
        context: ScoringContext,
        factors: EKFACFactors,
        damping: dict[str, float],
        queries: dict[str, _Preconditioned],
        rows: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        model, adapter = context.final_model, context.adapter
        n, m = context.train.height, context.queries.height
        matrix = np.zeros((n, m), dtype=np.float32)
        self_scores = np.full(n, np.nan, dtype=np.float64)
        with LinearCapture(model, list(factors.layers)) as cap, progress_bar(
            total=rows.size, description="EK-FAC scores"
        ) as advance:
            for start in range(0, rows.size, context.batch_size):
                idx = rows[start : start + context.batch_size]
                batch = adapter.collate(context.train[idx])
                grads = cap.activations_and_grads(adapter.example_losses(model, batch).sum())
                total = torch.zeros(idx.size, m, dtype=torch.float64)
                self_total = torch.zeros(idx.size, dtype=torch.float64)
                for name, (a, s) in grads.items():
                    layer, pre = factors.layers[name], queries[name]
                    if pre.dense is not None:
                        total += layer.scores(a, s, pre.dense).double()
                    else:
                        left = torch.einsum("bto,mor->btmr", layer.rotate_output_grads(s), pre.u)
                        right = torch.einsum("bti,mir->btmr", layer.rotate_inputs(a), pre.v)
                        total += (left * right).sum((1, 3)).double()
                    if self.config.self_influence:
                        weights = 1.0 / (layer.eigenvalues + damping[name])
                        self_total += layer.self_scores(a, s, weights).double()
                matrix[idx] = total.numpy()
                if self.config.self_influence:
                    self_scores[idx] = self_total.numpy()
                advance(idx.size)
        return matrix, self_scores
