"""``curate select-targeted``: keep the pool rows that help a few target tasks, judged by your model (LESS, GIST,
MATES, NN-CIFT, BIDS, TAROT, DEALRec, IDEAL), with the outputs of ``curate select``.

A sibling of ``curate select`` rather than more of its methods: those score text against text and stream the pool
shard by shard, while these read a model's gradients or losses (``--checkpoints``), label targets by task and rank
by cosine-like scores for which plain top-k (not Gumbel sampling) is the default.
"""

from __future__ import annotations

import click

# the methods of curation.selection.run_targeted.METHODS and FEATURE_SCORERS (listed here so that `--help` does
# not import torch; a unit test checks they agree)
METHODS = ("less", "gist", "mates", "nn_cift", "bids", "tarot", "dealrec", "ideal")
FEATURE_SCORERS = ("less", "gist")


@click.command("select-targeted")
@click.option("--pool", required=True, type=click.Path(),
              help="Pool: a Parquet file or a folder of Parquet shards with example_id and text columns.")
@click.option("--targets", default=None, type=click.Path(dir_okay=False),
              help="Target examples (Parquet/JSONL/CSV) with text and a task column (not needed by dealrec, ideal).")
@click.option("--task-column", default="task", show_default=True, help="Target column naming each row's task.")
@click.option("--targets-per-task", type=click.IntRange(min=0), default=0, show_default=True,
              help="Use only the first N target rows of each task (0 = all).")
@click.option("--method", required=True, type=click.Choice(list(METHODS)),
              help="less, gist: LoRA-gradient scores; mates, nn_cift: learned predictors of an oracle; bids, "
                   "tarot, dealrec, ideal: selectors with their own rule.")
@click.option("--checkpoints", default=None,
              help="Training output folder, checkpoint file, folder of plain state dicts, models:/ or runs:/ URI "
                   "(the final checkpoint is used).")
@click.option("--adapter", default=None, help="Model adapter of plain checkpoints (state dicts without metadata).")
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Model config option of plain checkpoints (repeatable).")
@click.option("--lr", "lrs", multiple=True, type=click.FloatRange(min=0, min_open=True),
              help="Plain checkpoints: the learning rate in force at each.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Method option, dotted for nested ones (e.g. warmup.epochs=2; repeatable).")
@click.option("--features-from", type=click.Choice(list(FEATURE_SCORERS)), default="less", show_default=True,
              help="bids, tarot: the scorer whose LoRA gradients they build on.")
@click.option("--feature-option", "feature_options", multiple=True, metavar="KEY=VALUE",
              help="Option of the --features-from scorer (e.g. features.proj_dim=1024; repeatable).")
@click.option("--holdout", type=click.IntRange(min=0), default=0, show_default=True,
              help="mates, nn_cift: label N more pool rows with the oracle and print the predictor's Spearman on them.")
@click.option("--budget", type=click.Choice(["fraction", "count", "tokens"]), default="fraction", show_default=True,
              help="What --value counts: a fraction of the pool rows, rows, or whitespace tokens.")
@click.option("--value", type=float, default=0.1, show_default=True,
              help="The budget (tarot with --value 0: TAROT estimates the size by optimal transport).")
@click.option("--gumbel", is_flag=True, help="Sample in proportion to exp(score) instead of keeping the top scores.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Gumbel noise.")
@click.option("--group-column", default="", help="Pool column whose groups get quotas (scorers only).")
@click.option("--quota", "quotas", multiple=True, metavar="GROUP=SHARE",
              help="Share of the budget for a group (shares sum to 1; repeatable).")
@click.option("--no-dedup", is_flag=True, help="Keep exact duplicate texts.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: filtered.parquet, selection.parquet, manifest.json, "
                   "not_selected_issues.parquet, summary.parquet.")
def select_targeted_cmd(pool: str, targets: str | None, task_column: str, targets_per_task: int, method: str,
                        checkpoints: str | None, adapter: str | None, model_options: tuple[str, ...],
                        lrs: tuple[float, ...], options: tuple[str, ...], features_from: str,
                        feature_options: tuple[str, ...], holdout: int, budget: str, value: float, gumbel: bool, seed: int,
                        group_column: str, quotas: tuple[str, ...], no_dedup: bool, out_dir: str) -> None:
    """Select the pool rows that help the target tasks most, according to a model, under a budget.

    LESS warms LoRA adapters up on a slice of the pool, then scores each pool row by the cosine between its
    Adam-preconditioned LoRA gradient and the gradients of the target examples (max over tasks of the task mean).
    No DVC or MLflow needed.

    \b
    Example:
      curate select-targeted --method less --checkpoints checkpoints/lm --pool data/corpus/train.parquet \\
          --targets data/corpus/val.parquet --task-column domain --targets-per-task 4 \\
          --budget count --value 200 --option warmup.epochs=2 --option features.proj_dim=1024 --out selected
      curate select-targeted --method bids --features-from gist --checkpoints checkpoints/lm \\
          --pool data/corpus/train.parquet --targets data/corpus/val.parquet --task-column domain \\
          --value 0.1 --out balanced
    """
    from curation.cli.select import parse_quotas
    from curation.config import load
    from curation.gradients.cli_support import parse_overrides, plain_checkpoints
    from curation.selection.run_targeted import run_targeted_selection
    from curation.selection.selector import SelectorConfig

    shares = parse_quotas(quotas)
    selector = load(SelectorConfig, {"budget": budget, "value": value, "method": "gumbel" if gumbel else "topk",
                                     "seed": seed, "group_column": group_column, "quotas": shares,
                                     "dedup": not no_dedup}, where="curate select-targeted")
    result = run_targeted_selection(
        pool, out_dir, method=method, options=parse_overrides(options, "--option"), selector=selector,
        checkpoints=checkpoints, plain=plain_checkpoints(adapter, model_options, lrs), targets=targets,
        task_column=task_column, targets_per_task=targets_per_task,
        features_from={"name": features_from, "options": parse_overrides(feature_options, "--feature-option")},
        holdout=holdout, show_progress=True)
    m = result.manifest
    figures = "".join(f", {k} {v:.4g}" for k, v in result.figures.items() if k in ("val_spearman", "heldout_spearman", "cost_saved"))
    click.echo(f"{m['rows_in']} rows: kept {m['kept']}, dropped {m['dropped']} "
               f"({', '.join(f'{r} {n}' for r, n in m['dropped_by_reason'].items())}){figures} "
               f"-> {out_dir}/filtered.parquet")
