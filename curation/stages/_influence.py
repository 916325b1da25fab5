"""Glue shared by the influence stages: turn a ``GradientJobConfig`` into tables, checkpoints and scorers whose
stores live under the ``compute_gradients`` root, so every stage reads the same features."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from curation.attribution import trust
from curation.attribution.base import ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.attribution.trak import TRAKConfig, TRAKScorer
from curation.config import load
from curation.gradients.cli_support import read_examples
from curation.gradients.config import ComputeGradientsConfig, GradientJobConfig
from curation.gradients.featurize import store_folder
from curation.gradients.jobs import load_checkpoints, sample_rows
from curation.io.params import load_stage_params


def gradients_config(stage: str) -> ComputeGradientsConfig:
    return load(ComputeGradientsConfig, load_stage_params(stage), where=f"params.yaml:{stage}")


def job_context(job: GradientJobConfig, queries: pl.DataFrame | None = None) -> ScoringContext:
    """Scoring context of one job: sampled train rows, sampled (or given) query rows, all checkpoints."""
    adapter, checkpoints = load_checkpoints(job.checkpoints)
    train = sample_rows(read_examples(job.train_data, what="training", adapter=adapter), job.train_sample,
                        seed=job.seed)
    if queries is None:
        queries = sample_rows(read_examples(job.query_data, what="query", adapter=adapter), job.query_sample,
                              seed=job.seed, by="domain") if job.query_data else train.head(1)
    return ScoringContext(adapter=adapter, checkpoints=checkpoints, train=train, queries=queries,
                          modules=job.modules or None, batch_size=job.batch_size, executor=job.executor)


def tracin(job: GradientJobConfig, store: str, name: str, *, normalize: str = "both",
           query_store: str = "") -> TracInScorer:
    return TracInScorer(TracInConfig(normalize=normalize, projection=job.projection, shard_size=job.shard_size,
                                     store=str(Path(store) / name), query_store=query_store))


def trak(job: GradientJobConfig, store: str, name: str, *, damping: float, query_store: str = "") -> TRAKScorer:
    """TRAK on the same loss features as TracIn (``output = loss``), the checkpoints forming the ensemble."""
    return TRAKScorer(TRAKConfig(output="loss", projection=job.projection, damping=damping,
                                 shard_size=job.shard_size, store=str(Path(store) / name), query_store=query_store))


def prune_stores(root: Path, ctx: ScoringContext, *, queries: bool) -> None:
    """Delete feature folders under ``root`` that this context does not use (older samples or checkpoints)."""
    keep = {Path(store_folder(str(root), "train", "loss", ctx.train)).name}
    if queries:
        keep.add(Path(store_folder(str(root), "query", "measurement", ctx.queries)).name)
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.is_dir() and folder.name not in keep:
            shutil.rmtree(folder)


def trust_assessment(ctx: ScoringContext, tracin_scorer: TracInScorer, matrices: dict, k: int
                     ) -> trust.TrustAssessment:
    """The report's estimator-trust inputs: text baselines from both tables' ``text``, gradient cosine from the
    final checkpoint's stored TracIn features, domain purity when both tables have a ``domain``."""
    train_grads, query_grads = tracin_scorer.gradient_features(ctx)

    def column(name: str) -> tuple[list | None, list | None]:
        if name in ctx.train.columns and name in ctx.queries.columns:
            return ctx.train[name].fill_null("").to_list(), ctx.queries[name].fill_null("").to_list()
        return None, None

    baselines = trust.baseline_matrices(*column("text"), train_grads[-1], query_grads[-1])
    train_domains, query_domains = column("domain")
    return trust.assess(matrices, baselines, k, train_domains=train_domains, query_domains=query_domains)
