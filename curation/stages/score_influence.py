"""Stage score_influence: which training passages most helped each query passage of the demo LM, by TracIn
(raw), TracIn with ReTrac renormalisation and TRAK over the checkpoints, read from the compute_gradients stores.
Headline figures: top-k domain purity and the generally-influential rate (norm bias) per method."""

from pathlib import Path

import numpy as np
import polars as pl

from curation.gbdt.stage import run_tree_stage
from curation.gradients.config import ScoreInfluenceConfig
from curation.gradients.jobs import save_scores
from curation.io import read_table
from curation.reports import HTMLReport, histogram
from curation.reports.trust import add_trust_section
from curation.stages import _influence
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "score_influence"


def retrieval_metrics(top: pl.DataFrame, train: pl.DataFrame, queries: pl.DataFrame) -> dict[str, float]:
    """Domain purity of the top-k lists (NaN without domains) and the share of queries whose list holds the
    single most frequent training example (high = gradient-norm bias, the same passages top every list)."""
    common = top["example_id"].mode()[0]
    rate = top.filter(pl.col("example_id") == common)["query_id"].n_unique() / top["query_id"].n_unique()
    purity = float("nan")
    if "domain" in queries.columns and "domain" in train.columns:
        joined = top.join(train.select("example_id", pl.col("domain").alias("train_domain")), on="example_id").join(
            queries.select(pl.col("example_id").alias("query_id"), "domain"), on="query_id")
        purity = float((joined["train_domain"] == joined["domain"]).mean())
    return {"domain_purity": purity, "generally_influential_rate": rate}


def main(cfg: ScoreInfluenceConfig) -> None:
    if cfg.tree.model:  # a boosted-tree model: BoostIn / TREX / LeafInfluence instead of the LM checkpoints
        run_tree_stage(STAGE, cfg, cfg.tree, out_dir=cfg.out_dir, top_k=cfg.top_k)
        return
    gcfg = _influence.gradients_config(cfg.gradients_stage)
    queries = read_table(cfg.queries) if cfg.queries else None
    ctx = _influence.job_context(gcfg.lm, queries)
    out, plots = Path(cfg.out_dir), Path(cfg.out_dir) / "plots"
    qs = str(Path(cfg.out_dir) / "query_gradients") if cfg.queries else ""  # never write into another stage's outs
    scorers = {"tracin": _influence.tracin(gcfg.lm, gcfg.store, "lm", normalize="none", query_store=qs),
               "retrac": _influence.tracin(gcfg.lm, gcfg.store, "lm", normalize=cfg.normalize, query_store=qs),
               "trak": _influence.trak(gcfg.lm, gcfg.store, "lm", damping=cfg.trak_damping, query_store=qs)}
    with RunRecorder(STAGE, cfg) as rec:
        report = HTMLReport("Influence: which training passages helped each query",
                            subtitle=f"{ctx.train.height} training passages x {ctx.queries.height} queries, "
                                     f"{len(ctx.checkpoints)} checkpoints")
        texts = ctx.train.select("example_id", pl.col("domain") if "domain" in ctx.train.columns else pl.lit("").alias("domain"),
                                 pl.col("text").str.slice(0, 160))
        matrices = {}
        for name, scorer in scorers.items():
            result = scorer.score(ctx)
            matrices[name] = result.matrix
            save_scores(result, out / name, top_k=cfg.top_k)
            top = result.scores(top_k=cfg.top_k)
            metrics = retrieval_metrics(top, ctx.train, ctx.queries)
            rec.log_metrics({f"{name}_{k}": v for k, v in metrics.items()})
            report.heading(f"{name}: top-{cfg.top_k} domain purity {metrics['domain_purity']:.2f}, "
                           f"generally-influential rate {metrics['generally_influential_rate']:.2f}")
            report.image(histogram(np.asarray(result.matrix).ravel(), plots / f"{name}_scores.png",
                                   title=f"{name}: train x query scores", xlabel="score"), caption=f"{name} scores")
            if name == "retrac":
                shown = top.filter(pl.col("rank") <= 3).join(texts, on="example_id", how="left")
                query_text = ctx.queries.select(pl.col("example_id").alias("query_id"),
                                                pl.col("text").str.slice(0, 160).alias("query_text"))
                report.table(shown.join(query_text, on="query_id", how="left")
                             .select("query_id", "query_text", "rank", "score", "domain", "text"), max_rows=60)
            rec.log_frame(top, f"scores/{name}_top_k.parquet")
        found = _influence.trust_assessment(ctx, scorers["tracin"], matrices, cfg.top_k)
        add_trust_section(report, found, cfg.top_k)
        rec.log_frame(found.agreement, "trust/agreement.parquet")
        report.write(out / "report.html")
        rec.log_artifact(out / "report.html")
        rec.log_artifact(plots, "plots")


def run() -> None:
    """Run this stage on the ``score_influence`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, ScoreInfluenceConfig, main)


if __name__ == "__main__":
    run()
