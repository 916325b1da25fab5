"""Estimator trust: does an influence ranking say more than text similarity does?

Influence estimates on language models are noisy and often reduce to lexical or gradient similarity (norm bias,
shared tokens). For the top-k lists of every query this module measures, with pure functions over
``[n_train, n_query]`` score matrices:

- agreement between the influence methods that were run (Spearman rank correlation over all training rows,
  and top-k overlap ``|top_k(a) & top_k(b)| / k``, whose chance level is ``k / n_train``);
- agreement of each method with three cheap baselines: BM25 over word tokens (``curation.text.bm25``, every
  ``\\w+`` run, no stop words), TF-IDF cosine (the project's character n-gram representation, as the TF-IDF
  pre-filter) and raw gradient cosine (final checkpoint, no learning-rate weighting, no training trajectory);
- where train and query rows carry a ``domain``, a ground-truth proxy: the share of each ranking's top-k with the
  query's domain, and whether an influence method beats the best text baseline on it, paired over queries;

and turns them into plain-language verdicts, e.g. that a method's lists are mostly what BM25 retrieves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl
from scipy.stats import rankdata

from curation.attribution.tfidf import char_tfidf_vectorizer
from curation.text.bm25 import WORDS, bm25_scores

TEXT_BASELINES = ("bm25", "tfidf")
BASELINES = (*TEXT_BASELINES, "gradient_cosine")
SAME_LISTS = 0.5  # top-k overlap above which a method's lists are "mostly" a baseline's


def tfidf_cosine(train_texts: Sequence[str], query_texts: Sequence[str]) -> np.ndarray:
    """``[n_train, n_query]`` cosine of sublinear character 3-5-gram TF-IDF vectors fitted on the training texts
    (the representation of ``curation.attribution.tfidf``'s pre-filter)."""
    vectorizer = char_tfidf_vectorizer()
    train_vec = vectorizer.fit_transform([t or "" for t in train_texts])
    query_vec = vectorizer.transform([t or "" for t in query_texts])
    return np.asarray((train_vec @ query_vec.T).toarray(), dtype=np.float64)  # rows L2-normalised: cosine


def gradient_cosine(train_grads: np.ndarray, query_grads: np.ndarray) -> np.ndarray:
    """``[n_train, n_query]`` cosine between training-loss and query gradients (zero rows give 0)."""
    g = np.asarray(train_grads, dtype=np.float64)
    q = np.asarray(query_grads, dtype=np.float64)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return g @ q.T


def top_k_indices(matrix: np.ndarray, k: int) -> np.ndarray:
    """``[k, n_query]`` row indices of the k largest scores per column (ties: lower index first)."""
    return np.argsort(-np.asarray(matrix, dtype=np.float64), axis=0, kind="stable")[: min(k, matrix.shape[0])]


def per_query_agreement(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: Spearman correlation of the two score columns over all training rows (average ranks for
    ties; NaN when a column is constant) and the top-k overlap ``|top_k(a) & top_k(b)| / k``."""
    if a.shape != b.shape:
        raise ValueError(f"score matrices differ in shape: {a.shape} vs {b.shape}")
    ra = rankdata(a, axis=0)
    rb = rankdata(b, axis=0)
    ra, rb = ra - ra.mean(axis=0), rb - rb.mean(axis=0)
    denom = np.sqrt((ra**2).sum(axis=0) * (rb**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, (ra * rb).sum(axis=0) / np.where(denom > 0, denom, 1), np.nan)
    ta, tb = top_k_indices(a, k), top_k_indices(b, k)
    overlap = np.array([len(set(ta[:, j]) & set(tb[:, j])) / ta.shape[0] for j in range(a.shape[1])])
    return rho, overlap


def agreement_table(methods: Mapping[str, np.ndarray], baselines: Mapping[str, np.ndarray], k: int
                    ) -> pl.DataFrame:
    """One row per (influence method, reference): every pair of methods, and each method against each baseline.

    Columns: ``method, reference, reference_kind`` (``influence`` | ``baseline``), ``spearman`` (mean over
    queries with a defined value), ``top_k_overlap`` (mean over queries), ``chance_overlap`` (``k / n_train``).
    """
    rows = []
    pairs = [(m, r, "influence") for m, r in combinations(methods, 2)]
    pairs += [(m, r, "baseline") for m in methods for r in baselines]
    for method, ref, kind in pairs:
        other = methods[ref] if kind == "influence" else baselines[ref]
        rho, overlap = per_query_agreement(methods[method], other, k)
        n_train = methods[method].shape[0]
        rows.append({"method": method, "reference": ref, "reference_kind": kind,
                     "spearman": float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"),
                     "top_k_overlap": float(overlap.mean()), "chance_overlap": min(k, n_train) / n_train})
    schema = {"method": pl.Utf8, "reference": pl.Utf8, "reference_kind": pl.Utf8, "spearman": pl.Float64,
              "top_k_overlap": pl.Float64, "chance_overlap": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def domain_hits(matrix: np.ndarray, train_domains: Sequence[object], query_domains: Sequence[object], k: int
                ) -> np.ndarray:
    """Per query, the share of the ranking's top-k training rows whose domain is the query's."""
    top = top_k_indices(matrix, k)
    train = np.asarray(list(train_domains), dtype=object)
    return np.array([float(np.mean(train[top[:, j]] == q)) for j, q in enumerate(query_domains)])


def domain_purity_table(rankings: Mapping[str, np.ndarray], train_domains: Sequence[object],
                        query_domains: Sequence[object], k: int, *, influence: Sequence[str]) -> pl.DataFrame:
    """Top-k domain purity of every ranking, and for each influence method its paired per-query difference to the
    best text baseline (mean and standard error; ``beats_text`` when the mean exceeds two standard errors).

    Columns: ``ranking, kind, domain_purity, best_text, vs_best_text, vs_best_text_se, beats_text`` (the last
    four null for baselines, or when no text baseline was scored).
    """
    hits = {name: domain_hits(m, train_domains, query_domains, k) for name, m in rankings.items()}
    texts = [t for t in TEXT_BASELINES if t in hits]
    best_text = max(texts, key=lambda t: hits[t].mean()) if texts else None
    rows = []
    for name, h in hits.items():
        row = {"ranking": name, "kind": "influence" if name in influence else "baseline",
               "domain_purity": float(h.mean()), "best_text": None, "vs_best_text": None, "vs_best_text_se": None,
               "beats_text": None}
        if name in influence and best_text is not None:
            diff = h - hits[best_text]
            se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else float("nan")
            row.update(best_text=best_text, vs_best_text=float(diff.mean()), vs_best_text_se=se,
                       beats_text=bool(diff.mean() > 2 * se) if math.isfinite(se) else False)
        rows.append(row)
    schema = {"ranking": pl.Utf8, "kind": pl.Utf8, "domain_purity": pl.Float64, "best_text": pl.Utf8,
              "vs_best_text": pl.Float64,
              "vs_best_text_se": pl.Float64, "beats_text": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


def trust_verdicts(agreement: pl.DataFrame, purity: pl.DataFrame | None = None) -> list[str]:
    """Plain-language findings, one per influence method, plus one on whether the methods agree at all."""
    lines = []
    for method in agreement["method"].unique(maintain_order=True).to_list():
        base = agreement.filter((pl.col("method") == method) & pl.col("reference").is_in(TEXT_BASELINES))
        row = purity.filter(pl.col("ranking") == method) if purity is not None else None
        if row is not None and row.height and row["beats_text"][0] is not None:
            diff, se, ref = row["vs_best_text"][0], row["vs_best_text_se"][0], row["best_text"][0]
            if row["beats_text"][0]:
                lines.append(f"{method}: retrieves same-domain passages better than text similarity "
                             f"(top-k domain purity {diff:+.2f} ± {se:.2f} against {ref}).")
            elif diff < -2 * se:
                lines.append(f"{method}: no better than text similarity; worse: {ref} retrieves more same-domain "
                             f"passages (top-k domain purity {diff:+.2f} ± {se:.2f} against {ref}).")
            else:
                lines.append(f"{method}: no better than text similarity: top-k domain purity {diff:+.2f} ± {se:.2f} "
                             f"against {ref}, within two standard errors.")
        elif base.height:
            best = base.sort("top_k_overlap", descending=True).row(0, named=True)
            if best["top_k_overlap"] >= SAME_LISTS:
                lines.append(f"{method}: its top-k lists are mostly what {best['reference']} retrieves (overlap "
                             f"{best['top_k_overlap']:.2f}); the ranking adds little beyond text similarity.")
            else:
                lines.append(f"{method}: its top-k lists differ from text similarity (largest overlap "
                             f"{best['top_k_overlap']:.2f}, with {best['reference']}; chance "
                             f"{best['chance_overlap']:.2f}).")
        grad = agreement.filter((pl.col("method") == method) & (pl.col("reference") == "gradient_cosine"))
        if grad.height and grad["top_k_overlap"][0] >= SAME_LISTS:
            lines.append(f"{method}: its top-k lists are mostly plain gradient cosine's at the final checkpoint "
                         f"(overlap {grad['top_k_overlap'][0]:.2f}): checkpoints and weighting add little.")
    pairs = agreement.filter(pl.col("reference_kind") == "influence")
    if pairs.height:
        low = pairs.sort("top_k_overlap").row(0, named=True)
        if low["top_k_overlap"] < SAME_LISTS:
            lines.append(f"{low['method']} and {low['reference']} share only {low['top_k_overlap']:.2f} of their "
                         f"top-k lists (Spearman {low['spearman']:.2f}): treat either ranking with caution.")
        else:
            lines.append(f"The influence methods agree: every pair shares at least {low['top_k_overlap']:.2f} of "
                         f"its top-k lists.")
    return lines


@dataclass(frozen=True)
class TrustAssessment:
    """What the trust section shows: the agreement table, domain purity (None without domains), the verdicts."""

    agreement: pl.DataFrame
    purity: pl.DataFrame | None
    verdicts: list[str]


def baseline_matrices(train_texts: Sequence[str] | None, query_texts: Sequence[str] | None,
                      train_grads: np.ndarray | None = None, query_grads: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """The baselines that the inputs allow: BM25 and TF-IDF cosine from texts, gradient cosine from gradients."""
    out: dict[str, np.ndarray] = {}
    if train_texts is not None and query_texts is not None:
        out["bm25"] = bm25_scores(train_texts, query_texts, pattern=WORDS)
        out["tfidf"] = tfidf_cosine(train_texts, query_texts)
    if train_grads is not None and query_grads is not None:
        out["gradient_cosine"] = gradient_cosine(train_grads, query_grads)
    return out


def assess(methods: Mapping[str, np.ndarray], baselines: Mapping[str, np.ndarray], k: int, *,
           train_domains: Sequence[object] | None = None, query_domains: Sequence[object] | None = None
           ) -> TrustAssessment:
    """Agreement, domain purity (when both domain lists are given) and verdicts for the influence ``methods``."""
    agreement = agreement_table(methods, baselines, k)
    purity = None
    if train_domains is not None and query_domains is not None:
        purity = domain_purity_table({**methods, **baselines}, train_domains, query_domains, k,
                                     influence=list(methods))
    return TrustAssessment(agreement, purity, trust_verdicts(agreement, purity))
