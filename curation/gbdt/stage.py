"""Stage glue for tree models: the ``tree`` block of ``score_influence`` / ``detect_label_errors`` -> scores
(and, for ``score_influence``, the whole tree-model run: outputs, report, MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from curation.attribution.base import ScoreResult
from curation.gbdt.cli_support import tree_context, tree_scores, tree_self_influence
from curation.gbdt.config import TreeInfluenceConfig
from curation.gbdt.scorers import TreeScoringContext


def tree_influence(cfg: TreeInfluenceConfig) -> tuple[TreeScoringContext, ScoreResult]:
    """Context and train x query scores of ``cfg.method`` on the configured model and tables."""
    ctx = tree_context(cfg.model, cfg.train, cfg.queries or None)
    return ctx, tree_scores(cfg.method, dict(cfg.options), ctx)


def tree_self_influence_frame(cfg: TreeInfluenceConfig) -> pl.DataFrame:
    """``example_id, score`` of self-influence for every row of ``cfg.train`` (higher = more suspicious)."""
    ctx = tree_context(cfg.model, cfg.train, None)
    return pl.DataFrame({"example_id": ctx.train["example_id"],
                         "score": tree_self_influence(cfg.method, dict(cfg.options), ctx)})


def run_tree_stage(stage: str, stage_cfg: Any, cfg: TreeInfluenceConfig, *, out_dir: str, top_k: int) -> None:
    """``score_influence`` on a tree model: matrix, top-k and self-influence under ``out_dir/<method>``, an HTML
    report with the score histogram and the top training rows per query, logged to MLflow."""
    import numpy as np

    from curation.gradients.jobs import save_scores
    from curation.reports import HTMLReport, histogram
    from curation.tracking import RunRecorder

    out = Path(out_dir)
    with RunRecorder(stage, stage_cfg) as rec:
        ctx, result = tree_influence(cfg)
        save_scores(result, out / cfg.method, top_k=top_k)
        top = result.scores(top_k=top_k)
        rec.log_metrics({f"{cfg.method}_newton_mismatch": float(result.extras["newton_mismatch"]),
                         f"{cfg.method}_positive_share": float(np.mean(result.matrix > 0))})
        report = HTMLReport(f"Influence on a boosted-tree model: {cfg.method}",
                            subtitle=f"{ctx.train.height} training rows x {ctx.queries.height} queries, "
                                     f"{ctx.ensemble.n_trees} trees ({cfg.model})")
        report.image(histogram(np.asarray(result.matrix).ravel(), out / "plots" / f"{cfg.method}_scores.png",
                               title=f"{cfg.method}: train x query scores", xlabel="score"), caption="scores")
        report.heading("Most helpful training rows per query").table(top.filter(pl.col("rank") <= 3), max_rows=60)
        report.write(out / "report.html")
        rec.log_artifact(out / "report.html")
        rec.log_frame(top, f"scores/{cfg.method}_top_k.parquet")
