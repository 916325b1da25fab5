"""``curate label-errors``: rank training examples by self-influence and drop (or flag) the most suspicious."""

from __future__ import annotations

import click


@click.command("label-errors")
@click.option("--checkpoints", required=True,
              help="Training output folder (checkpoints.json + ckpt-*.safetensors), one checkpoint file, or a "
                   "models:/name/version URI.")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training table (Parquet/JSONL/CSV) with example_id, payload and label columns.")
@click.option("--method", default="tracin", show_default=True,
              help="Registered scorer: tracin, trak, ...; boostin, trex, leaf_influence for a tree model folder.")
@click.option("--fraction", type=float, default=0.1, show_default=True,
              help="Top fraction by self-influence to act on.")
@click.option("--action", type=click.Choice(["drop", "flag"]), default="drop", show_default=True,
              help="drop: filtered table without them; flag: keep them, annotated.")
@click.option("--projection", type=click.Choice(["identity", "gaussian", "rademacher", "sjlt", "kronecker"]),
              default=None,
              help="Gradient sketch (tracin default identity, trak gaussian).")
@click.option("--dim", type=int, default=None, help="Projected dimension k.")
@click.option("--known-errors", type=click.Path(dir_okay=False), default=None,
              help="Optional table of example_ids known to be wrong: prints average precision.")
@click.option("--store", default="", help="Folder for resumable gradient features (rerun resumes).")
@click.option("--batch-size", type=int, default=128, show_default=True, help="Examples per gradient micro-batch.")
@click.option("--tag-model", default="",
              help="models:/name/version to tag with the label-error rate; 'auto' = the --checkpoints URI or the "
                   "version registered beside the checkpoints (needs an MLflow store).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where gradient shards run: this process, or tasks on a Ray cluster.")
@click.option("--ray-address", default="", help="Ray cluster address (e.g. ray://head:10001); empty = start Ray here.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: filtered.parquet, manifest.json, selection.parquet.")
def label_errors_cmd(checkpoints: str, train_path: str, method: str, fraction: float, action: str,
                     projection: str | None, dim: int | None, known_errors: str | None, store: str,
                     batch_size: int, executor: str, ray_address: str, tag_model: str, out_dir: str) -> None:
    """Find likely label errors by self-influence and write the filtered training table plus a manifest.

    Self-influence (sum over checkpoints of lr * ||gradient||^2 for tracin) is large where the model keeps
    fighting an example's label. The training table must pass the model's data contract (the Great
    Expectations suite of `curate validate`). No DVC or MLflow needed, except for --tag-model.

    \b
    Example:
      curate label-errors --checkpoints checkpoints/classifier --train data/digits/train.parquet \\
          --fraction 0.1 --action drop --known-errors data/digits/noisy_ids.parquet --out cleaned \\
          --tag-model models:/curation-demo-classifier/latest
      curate label-errors --checkpoints models/adult_lgbm --train adult_train.parquet --method boostin \\
          --fraction 0.1 --action flag --out adult_flags
    """
    from pathlib import Path

    import polars as pl

    from curation.attribution.base import ScoringContext
    from curation.errors import CurationError
    from curation.executors import ExecutorConfig
    from curation.gbdt.cli_support import is_tree_method, tree_context, tree_self_influence
    from curation.gradients.cli_support import build_scorer, read_examples, self_influence
    from curation.gradients.jobs import load_checkpoints
    from curation.io import read_table, write_parquet
    from curation.models.registered import registered_uri
    from curation.selection import SelfInfluenceSelector, SelfInfluenceSelectorConfig, write_filtered
    from curation.selection.detection import detection_metrics
    from curation.selection.model_tags import label_error_rate, tag_label_error_rate

    if is_tree_method(method):  # a boosted-tree model folder or URI: boostin, trex, leaf_influence
        tree_ctx = tree_context(checkpoints, train_path, None)
        train, values = tree_ctx.train, tree_self_influence(method, {}, tree_ctx)
    else:
        options: dict = {"store": store} if store else {}
        if projection or dim:
            options["projection"] = {k: v for k, v in (("kind", projection), ("dim", dim)) if v is not None}
        scorer = build_scorer(method, options)
        adapter, ckpts = load_checkpoints(checkpoints)
        train = read_examples(train_path, what="training", adapter=adapter)
        ctx = ScoringContext(adapter=adapter, checkpoints=ckpts, train=train, queries=train.head(1),
                             batch_size=batch_size, executor=ExecutorConfig(kind=executor, address=ray_address))
        values = self_influence(scorer, ctx)
    scores = pl.DataFrame({"example_id": train["example_id"], "score": values})
    cfg = SelfInfluenceSelectorConfig(fraction=fraction, action=action)
    selection = SelfInfluenceSelector(cfg).select(scores)
    manifest = write_filtered(train_path, selection, out_dir, selector=SelfInfluenceSelector.name, config=cfg)
    write_parquet(selection, Path(out_dir) / "selection.parquet")
    click.echo(f"{manifest['rows_in']} rows: kept {manifest['kept']}, dropped {manifest['dropped']}, "
               f"flagged {sum(manifest['flagged_by_reason'].values())} -> {out_dir}/filtered.parquet")
    m: dict[str, float] = {}
    if known_errors:
        known = read_table(known_errors, columns=["example_id"])["example_id"].to_list()
        m = detection_metrics(scores, known, fraction=fraction)
        click.echo(f"known errors {int(m['known_errors'])}: average precision {m['average_precision']:.4f}, "
                   f"precision at {fraction:.0%} {m['precision_at_fraction']:.4f}")
    uri = registered_uri(checkpoints) if tag_model == "auto" else tag_model
    if tag_model and not uri:
        raise CurationError(f"{checkpoints}: --tag-model auto, but no registered model version is recorded there")
    if uri:
        rate = label_error_rate(manifest)
        tag_label_error_rate(uri, {"rows_in": manifest["rows_in"], "label_error_rate": rate}, m, run_id=None)
        click.echo(f"tagged {uri}: label-error rate {rate:.4f}")
