"""``curate train``: fit a model on your own table and write checkpoints that every curation method can read."""

from __future__ import annotations

import click


@click.command("train")
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--model", "model_name", default=None,
              help="Registered model adapter (curate plugins --group curation.model_adapters): mlp, logistic, "
                   "byte_gpt, lightgbm, ... Default: byte_gpt for a table with a text column, else mlp.")
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Model config option (repeatable), e.g. hidden=[256,128]; curate config explain shows the keys. "
                   "A classifier's n_features and n_classes are read off the table unless given.")
@click.option("--val", "val_path", type=click.Path(dir_okay=False), default=None,
              help="Validation table: its loss is recorded in the curve.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None, help="Passes over the table.")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Examples per step.")
@click.option("--checkpoints", "n_checkpoints", type=click.IntRange(min=1), default=None,
              help="Evenly spaced checkpoints to save (TracIn uses them).")
@click.option("--seed", type=int, default=None, help="Seed for initialisation and data order.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any other training option (optimizer, schedule, weight_decay, warmup_steps, ...).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: ckpt-*.safetensors (with learning rates), checkpoints.json, positions.parquet.")
def train_cmd(table: str, model_name: str | None, model_options: tuple[str, ...], val_path: str | None,
              epochs: float | None, learning_rate: float | None, batch_size: int | None, n_checkpoints: int | None,
              seed: int | None, overrides: tuple[str, ...], out_dir: str) -> None:
    """Train a classifier on a features table or a causal LM on a text table, with checkpoints.

    The table is checked against the model's data contract first; the output folder is replaced only when
    training succeeds. Every checkpoint records its adapter, model config and learning rate, so the folder works
    directly with curate influence, curate label-errors and the DVC stages.

    \b
    Example:
      curate train data/train.parquet --model mlp --model-option hidden=[128] \\
          --epochs 20 --lr 0.05 --checkpoints 5 --val data/val.parquet --out checkpoints/mine
      curate label-errors data/train.parquet --checkpoints checkpoints/mine --out cleaned
      curate train adult.parquet --model lightgbm --model-option exclude=[income] --out models/adult_lgbm
    """
    from curation.config import config_hash, load
    from curation.gradients.cli_support import check_examples, parse_overrides, read_examples
    from curation.io import file_digest, read_table
    from curation.training.fit import build_adapter, fit_to_folder
    from curation.training.loop import TrainConfig

    frame = read_table(table)
    name = model_name or ("byte_gpt" if "text" in frame.columns else "mlp")
    if name == "lightgbm":  # boosted trees: LightGBM text model + table encoding, for boostin/trex/leaf_influence
        from curation.gbdt.train import train_tree_model

        tree = train_tree_model(table, out_dir, options=parse_overrides(model_options, "--model-option"))
        click.echo(f"lightgbm: {tree['rows']} rows, {tree['trees']} trees, train log-loss {tree['train_loss']:.4f} "
                   f"-> {out_dir}/model.txt")
        return
    adapter = build_adapter(name, parse_overrides(model_options, "--model-option"), frame, source=table)
    frame = check_examples(frame, table, what="training", adapter=adapter)
    val = read_examples(val_path, what="validation", adapter=adapter) if val_path else None
    given = {"epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size,
             "n_checkpoints": n_checkpoints, "seed": seed}
    options = {**parse_overrides(overrides), **{k: v for k, v in given.items() if v is not None}}
    cfg = load(TrainConfig, options, where="training options")
    result = fit_to_folder(adapter, frame, cfg, out_dir, source_digest=file_digest(table),
                           config_hash=config_hash(cfg), val_frame=val)
    curve = result.curve.drop_nulls("train_loss")
    val_text = "" if val is None else f", validation loss {result.curve['val_loss'][-1]:.4f}"
    click.echo(f"{name}: {frame.height} rows, {cfg.epochs:g} epochs, final train loss "
               f"{curve['train_loss'][-1]:.4f}{val_text}")
    for ckpt in result.checkpoints:
        click.echo(f"  {out_dir}/{ckpt['file']}  step {ckpt['step']}  learning rate {ckpt['learning_rate']:.4g}")
