"""``curate influence``: which training examples helped or hurt each query, on your own table and checkpoints."""

from __future__ import annotations

from typing import Any

import click


@click.command("influence")
@click.option("--checkpoints", required=True,
              help="Training output folder (checkpoints.json + ckpt-*.safetensors), one checkpoint file, or a "
                   "models:/name/version URI; for boostin/trex/leaf_influence a tree model folder (curate train).")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training table (Parquet/JSONL/CSV) with example_id and the model's payload columns.")
@click.option("--queries", "query_path", required=True, type=click.Path(dir_okay=False),
              help="Query table with example_id and the same payload columns.")
@click.option("--method", default="tracin", show_default=True,
              help="Registered scorer (curate plugins --group curation.scorers): tracin, trak, ekfac, ...; "
                   "for tree models (curation.tree_scorers): boostin, trex, leaf_influence.")
@click.option("--normalize", type=click.Choice(["none", "train", "both"]), default=None,
              help="TracIn ReTrac renormalisation (default both: query-specific retrieval).")
@click.option("--projection", type=click.Choice(["identity", "gaussian", "rademacher", "sjlt", "kronecker"]),
              default=None,
              help="Gradient sketch for tracin/trak (tracin default identity, trak gaussian).")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Projected dimension k.")
@click.option("--modules", default="", help="Comma-separated module names to attribute (default: adapter's).")
@click.option("--last", type=click.IntRange(min=1), default=None, help="Use only the last N checkpoints.")
@click.option("--train-sample", type=click.IntRange(min=0), default=0, show_default=True, help="Score a seeded sample of N rows.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Training examples listed per query.")
@click.option("--store", default="", help="Folder for resumable gradient features (rerun resumes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Examples per gradient micro-batch.")
@click.option("--set", "overrides", multiple=True, help="Extra scorer option KEY=VALUE (repeatable).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where gradient shards run: this process, or tasks on a Ray cluster.")
@click.option("--ray-address", default="", help="Ray cluster address (e.g. ray://head:10001); empty = start Ray here.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: matrix.npy, top_k.parquet, self_influence.parquet.")
@click.option("--trust", "with_trust", is_flag=True,
              help="Also write trust.html and trust.parquet: how far the ranking agrees with BM25 and TF-IDF text "
                   "similarity (tables with a text column) and final-checkpoint gradient cosine, with verdicts.")
def influence_cmd(checkpoints: str, train_path: str, query_path: str, method: str, normalize: str | None,
                  projection: str | None, dim: int | None, modules: str, last: int | None, train_sample: int,
                  top_k: int, store: str, batch_size: int, executor: str, ray_address: str,
                  overrides: tuple[str, ...], out_dir: str, with_trust: bool) -> None:
    """Score every training example against every query (positive = helpful: it lowers the query's loss).

    Writes the dense train x query matrix as .npy, the top-k training examples per query and self-influence.
    No DVC or MLflow needed.

    \b
    Example:
      curate influence --checkpoints checkpoints/lm --train data/corpus/train.parquet \\
          --queries my_queries.parquet --method tracin --projection sjlt --dim 1024 \\
          --modules blocks.2.fc,head --top-k 5 --out influence_out --trust
      curate influence --checkpoints models/adult_lgbm --train adult_train.parquet \\
          --queries adult_test.parquet --method leaf_influence --set update_set=0 --out tree_influence
    """
    from curation.attribution.base import ScoringContext
    from curation.errors import ConfigError
    from curation.executors import ExecutorConfig
    from curation.gbdt.cli_support import is_tree_method, tree_context, tree_scores
    from curation.gradients.cli_support import build_scorer, parse_overrides, read_examples
    from curation.gradients.jobs import load_checkpoints, sample_rows

    options = parse_overrides(overrides)
    if is_tree_method(method):  # a boosted-tree model folder or URI: boostin, trex, leaf_influence
        if train_sample:
            raise ConfigError("--train-sample: tree influence needs every row the model was fitted on")
        if with_trust:
            raise ConfigError("--trust: needs gradient scorers (tracin, trak, ...), not tree influence")
        _write(tree_scores(method, options, tree_context(checkpoints, train_path, query_path)), out_dir, top_k)
        return
    if projection or dim:
        options.setdefault("projection", {}).update(
            {k: v for k, v in (("kind", projection), ("dim", dim)) if v is not None})
    options.update({k: v for k, v in (("normalize", normalize), ("store", store)) if v})
    scorer = build_scorer(method, options)
    adapter, ckpts = load_checkpoints(checkpoints, last=last)
    train = sample_rows(read_examples(train_path, what="training", adapter=adapter), train_sample, seed=0)
    ctx = ScoringContext(adapter=adapter, checkpoints=ckpts, train=train,
                         queries=read_examples(query_path, what="query", adapter=adapter),
                         modules=tuple(m for m in modules.split(",") if m) or None, batch_size=batch_size,
                         executor=ExecutorConfig(kind=executor, address=ray_address))
    result = scorer.score(ctx)
    _write(result, out_dir, top_k)
    if with_trust:
        _trust(method, result.matrix, ctx, scorer if method == "tracin" else
               build_scorer("tracin", {k: options[k] for k in ("projection",) if k in options}),
               out_dir, top_k)


def _write(result: Any, out_dir: str, top_k: int) -> None:
    from curation.gradients.jobs import save_scores

    paths = save_scores(result, out_dir, top_k=top_k)
    best = result.scores(top_k=1)
    for row in best.iter_rows(named=True):
        click.echo(f"query {row['query_id']}: most helpful training example {row['example_id']} "
                   f"(score {row['score']:.4g})")
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


def _trust(method: str, matrix: Any, ctx: Any, tracin: Any, out_dir: str, top_k: int) -> None:
    """trust.html / trust.parquet for one method against the baselines (``curation.attribution.trust``)."""
    from pathlib import Path

    from curation.io import write_parquet
    from curation.reports import HTMLReport
    from curation.reports.trust import add_trust_section
    from curation.stages._influence import trust_assessment

    found = trust_assessment(ctx, tracin, {method: matrix}, top_k)
    write_parquet(found.agreement, Path(out_dir) / "trust.parquet")
    report = HTMLReport(f"Influence ({method}): estimator trust",
                        subtitle=f"{ctx.train.height} training rows x {ctx.queries.height} queries")
    add_trust_section(report, found, top_k).write(Path(out_dir) / "trust.html")
    for line in found.verdicts:
        click.echo(line)
    click.echo(f"wrote {Path(out_dir) / 'trust.html'}, {Path(out_dir) / 'trust.parquet'}")
