"""``curate label-errors``: find likely label errors in a table, with or without your checkpoints.

Three sources of evidence, one output contract (``label_issues.parquet`` + ``summary.parquet``, the filtered table
and its manifest):

- no ``--checkpoints``: cross-fitted models trained here (out-of-fold probabilities, confident learning);
- ``--checkpoints`` of a neural model (ours, or plain state dicts with ``--adapter``/``--model-option``/``--lr``):
  self-influence from a registered scorer (TracIn by default);
- ``--checkpoints`` of a boosted-tree model with ``--method boostin|trex|leaf_influence``: tree self-influence.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

DEFAULT_FRACTION = 0.1  # share acted on when a ranking has no decision of its own and --fraction is not given


@click.command("label-errors")
@click.argument("table", required=False, type=click.Path(dir_okay=False))
@click.option("--train", "train_path", default=None, type=click.Path(dir_okay=False),
              help="Same as TABLE: the labelled table (Parquet/JSONL/CSV) with example_id, payload and label.")
@click.option("--checkpoints", default=None,
              help="Training output folder, checkpoint file, folder of plain state dicts, models:/ or runs:/ URI. "
                   "Omit it to train cross-fitted models here.")
@click.option("--method", default="tracin", show_default=True,
              help="With --checkpoints: registered scorer (tracin, trak, ekfac, ...); boostin, trex, leaf_influence "
                   "for a tree model folder.")
@click.option("--adapter", default=None,
              help="Model adapter of plain checkpoints, or of the cross-fitted models (default mlp).")
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Model config option (repeatable); n_features and n_classes are read off the table.")
@click.option("--lr", "lrs", multiple=True, type=click.FloatRange(min=0, min_open=True),
              help="Plain checkpoints: the learning rate in force at each (one for all, or one per checkpoint). "
                   "Cross-fitting: the training learning rate.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-fitting: stratified folds.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Cross-fitting: epochs per fold model (default 30).")
@click.option("--fraction", type=click.FloatRange(0, 1), default=None,
              help="Act on the top fraction by score (default 0.1 with checkpoints; without, confident learning "
                   "decides).")
@click.option("--action", type=click.Choice(["drop", "flag"]), default="drop", show_default=True,
              help="drop: filtered table without them; flag: keep them, annotated.")
@click.option("--projection", type=click.Choice(["identity", "gaussian", "rademacher", "sjlt", "kronecker"]),
              default=None,
              help="Gradient sketch (tracin default identity, trak gaussian).")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Projected dimension k.")
@click.option("--known-errors", type=click.Path(dir_okay=False), default=None,
              help="Optional table of example_ids known to be wrong: prints average precision.")
@click.option("--store", default="", help="Folder for resumable gradient features (rerun resumes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Examples per gradient micro-batch.")
@click.option("--tag-model", default="",
              help="models:/name/version to tag with the label-error rate; 'auto' = the --checkpoints URI or the "
                   "version registered beside the checkpoints (needs an MLflow store).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where gradient shards run: this process, or tasks on a Ray cluster.")
@click.option("--ray-address", default="", help="Ray cluster address (e.g. ray://head:10001); empty = start Ray here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Cross-fitting: seed of folds and training.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: label_issues.parquet, summary.parquet, filtered.parquet, manifest.json.")
def label_errors_cmd(table: str | None, train_path: str | None, checkpoints: str | None, method: str,
                     adapter: str | None, model_options: tuple[str, ...], lrs: tuple[float, ...], folds: int,
                     epochs: float | None, fraction: float | None, action: str, projection: str | None,
                     dim: int | None, known_errors: str | None, store: str, batch_size: int, tag_model: str,
                     executor: str, ray_address: str, seed: int, out_dir: str) -> None:
    """Find likely label errors and write the issue table, a summary and the filtered table.

    Without --checkpoints it trains cross-fitted classifiers itself (as cleanlab's one call does) and ranks rows
    by 1 - out-of-fold probability of the given label. With checkpoints it ranks by self-influence (large where
    the model keeps fighting an example's label). The table must pass the model's data contract (the Great
    Expectations suite of `curate validate`). No DVC or MLflow needed, except for --tag-model.

    \b
    Example:
      curate label-errors data/train.parquet --out cleaned              # no checkpoints: cross-fitting
      curate label-errors data/train.parquet --checkpoints my_ckpts/ --adapter mlp \\
          --model-option hidden=[128] --lr 0.1 --out cleaned           # your own plain state dicts
      curate label-errors --checkpoints checkpoints/classifier --train data/digits/train.parquet \\
          --fraction 0.1 --action drop --known-errors data/digits/noisy_ids.parquet --out cleaned \\
          --tag-model models:/curation-demo-classifier/latest
      curate label-errors --checkpoints models/adult_lgbm --train adult_train.parquet --method boostin \\
          --fraction 0.1 --action flag --out adult_flags
    """
    from curation.errors import ConfigError
    from curation.gbdt.cli_support import is_tree_method

    if bool(table) == bool(train_path):
        raise ConfigError("name the labelled table once: as TABLE or as --train")
    path = table or train_path
    if checkpoints is None:
        if tag_model == "auto":
            raise ConfigError("--tag-model auto needs --checkpoints (cross-fitted models are not registered)")
        found = _cross_fitted(path, adapter or "mlp", model_options, lrs, folds, epochs, seed)
    elif is_tree_method(method):
        found = _tree_self_influence(path, checkpoints, method)
    else:
        found = _self_influence(path, checkpoints, method, adapter, model_options, lrs, projection, dim, store,
                                batch_size, executor, ray_address)
    _publish(path, found, fraction=fraction, action=action, known_errors=known_errors, out_dir=out_dir,
             tag_model=tag_model, checkpoints=checkpoints)


def _cross_fitted(path: str, adapter_name: str, model_options: tuple[str, ...], lrs: tuple[float, ...],
                  folds: int, epochs: float | None, seed: int) -> dict[str, Any]:
    from dataclasses import replace

    from curation.errors import ConfigError
    from curation.gradients.cli_support import check_examples, parse_overrides
    from curation.io import read_table
    from curation.selection.cross_fit import CrossFitConfig, cross_fit
    from curation.training.fit import build_adapter

    if len(lrs) > 1:
        raise ConfigError("--lr: cross-fitting trains with one learning rate")
    frame = read_table(path)
    model = build_adapter(adapter_name, parse_overrides(model_options, "--model-option"), frame, source=path)
    frame = check_examples(frame, path, what="training", adapter=model)
    cfg = CrossFitConfig(folds=folds, seed=seed)
    cfg = replace(cfg, train=replace(cfg.train, **{k: v for k, v in (("learning_rate", lrs[0] if lrs else None),
                                                                      ("epochs", epochs)) if v is not None}))
    result = cross_fit(model, frame, cfg, source=path)
    return {"ids": frame["example_id"], "scores": result.scores(), "method": f"cross_fit_{adapter_name}",
            "reason": "low_out_of_fold_confidence",
            "confident": result.confident_issues(),
            "extras": {"given": result.labels, "suggested": result.suggested_labels()}}


def _self_influence(path: str, checkpoints: str, method: str, adapter: str | None, model_options: tuple[str, ...],
                    lrs: tuple[float, ...], projection: str | None, dim: int | None, store: str, batch_size: int,
                    executor: str, ray_address: str) -> dict[str, Any]:
    from curation.attribution.base import ScoringContext
    from curation.executors import ExecutorConfig
    from curation.gradients.cli_support import build_scorer, plain_checkpoints, read_examples, self_influence
    from curation.gradients.jobs import load_checkpoints

    options: dict = {"store": store} if store else {}
    if projection or dim:
        options["projection"] = {k: v for k, v in (("kind", projection), ("dim", dim)) if v is not None}
    scorer = build_scorer(method, options)
    model, ckpts = load_checkpoints(checkpoints, plain=plain_checkpoints(adapter, model_options, lrs))
    train = read_examples(path, what="training", adapter=model)
    ctx = ScoringContext(adapter=model, checkpoints=ckpts, train=train, queries=train.head(1),
                         batch_size=batch_size, executor=ExecutorConfig(kind=executor, address=ray_address))
    return {"ids": train["example_id"], "scores": self_influence(scorer, ctx), "method": f"{method}_self_influence",
            "reason": "high_self_influence"}


def _tree_self_influence(path: str, checkpoints: str, method: str) -> dict[str, Any]:
    from curation.gbdt.cli_support import tree_context, tree_self_influence

    tree_ctx = tree_context(checkpoints, path, None)
    return {"ids": tree_ctx.train["example_id"], "scores": tree_self_influence(method, {}, tree_ctx),
            "method": f"{method}_self_influence", "reason": "high_self_influence"}


def _publish(path: str, found: dict[str, Any], *, fraction: float | None, action: str, known_errors: str | None,
             out_dir: str, tag_model: str, checkpoints: str | None) -> None:
    """Decide, write the output contract and the filtered table, report detection figures, tag the model."""
    from pathlib import Path

    import polars as pl

    from curation.errors import CurationError
    from curation.io import read_table, write_parquet
    from curation.issue_tables import dataset_summary, issue_table
    from curation.models.registered import registered_uri
    from curation.selection import SelfInfluenceSelectorConfig, write_filtered
    from curation.selection.detection import detection_metrics
    from curation.selection.model_tags import label_error_rate, tag_label_error_rate

    scores = pl.DataFrame({"example_id": found["ids"], "score": np.asarray(found["scores"], dtype=np.float64)})
    confident = found.get("confident") if fraction is None else None  # cross-fitting decides unless told
    issues = issue_table(scores["example_id"], scores["score"], issue="label", flagged=confident,
                         fraction=fraction if fraction is not None else DEFAULT_FRACTION, extras=found.get("extras"))
    flagged = issues["is_label_issue"]
    keep = ~flagged.to_numpy() if action == "drop" else np.ones(len(flagged), dtype=bool)
    selection = pl.DataFrame({"example_id": scores["example_id"], "keep": keep,
                              "reason": np.where(flagged.to_numpy(), found["reason"], "kept"),
                              "score": scores["score"], "rank": issues["label_rank"]})
    decided_fraction = float(flagged.mean()) if fraction is None else fraction
    cfg = SelfInfluenceSelectorConfig(fraction=decided_fraction, action=action)
    known = read_table(known_errors, columns=["example_id"])["example_id"].to_list() if known_errors else None
    manifest = write_filtered(path, selection, out_dir, selector=found["method"], config=cfg, write_selection=True)
    metrics: dict[str, float] = {}
    if known is not None:  # read before anything is written, so a bad file leaves earlier outputs as they were
        metrics = detection_metrics(scores, known, fraction=decided_fraction)
    summary = dataset_summary(issues, issue="label", method=found["method"], **metrics)
    write_parquet(issues, Path(out_dir) / "label_issues.parquet")
    write_parquet(summary, Path(out_dir) / "summary.parquet")
    click.echo(f"{manifest['rows_in']} rows: {int(flagged.sum())} label issues ({found['method']}); kept "
               f"{manifest['kept']}, dropped {manifest['dropped']} -> {out_dir}/label_issues.parquet, filtered.parquet")
    if metrics:
        click.echo(f"known errors {int(metrics['known_errors'])}: average precision {metrics['average_precision']:.4f}, "
                   f"precision at {decided_fraction:.1%} {metrics['precision_at_fraction']:.4f}")
    uri = (registered_uri(checkpoints) if checkpoints else None) if tag_model == "auto" else tag_model
    if tag_model and not uri:
        raise CurationError(f"{checkpoints}: --tag-model auto, but no registered model version is recorded there")
    if uri:
        rate = label_error_rate(manifest)
        tag_label_error_rate(uri, {"rows_in": manifest["rows_in"], "label_error_rate": rate}, metrics, run_id=None)
        click.echo(f"tagged {uri}: label-error rate {rate:.4f}")
