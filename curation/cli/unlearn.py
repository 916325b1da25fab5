"""``curate unlearn``: apply an unlearning operator to a checkpoint for a forget request."""

from __future__ import annotations

import click


@click.command("unlearn")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training table the model was trained on (needs example_id).")
@click.option("--request", "request_path", required=True, type=click.Path(dir_okay=False),
              help="Forget request: table with the example_id column to forget.")
@click.option("--model", "model_ref", required=True,
              help="Original model: checkpoint file, training out folder or models:/name/version.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the unlearned .safetensors checkpoint.")
@click.option("--method", default="iau",
              type=click.Choice(["retrain", "finetune", "gradient_ascent", "gradient_difference", "iau"]),
              show_default=True, help="Unlearning operator.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimiser steps (default from --config or 1).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Unlearning learning rate (default from --config or 1e-3).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML mapping of further operator settings (keys of UnlearnConfig, incl. 'train' for retrain/finetune).")
@click.option("--register-as", default="", help="Also register the result as a new version of this MLflow model.")
def unlearn_cmd(train_path: str, request_path: str, model_ref: str, out_path: str, method: str,
                steps: int | None, lr: float | None, config_path: str | None, register_as: str) -> None:
    """Unlearn the rows of REQUEST from MODEL and write a new checkpoint (exact retrain or an approximation).

    `retrain` trains a fresh model of the same architecture on the retain rows (training settings from the
    `train:` key of --config); `finetune` continues training MODEL on the retain rows with those settings; the
    other methods start from MODEL.

    \b
    Example:
      curate unlearn --train data/digits/train.parquet --request data/forget/request.parquet \\
        --model checkpoints/classifier --method gradient_difference --steps 20 --out unlearned.safetensors
    """
    from pathlib import Path

    from curation.config import load, read_yaml_mapping
    from curation.io import read_table
    from curation.models.references import load_final_model as load_model
    from curation.models.references import resolve_checkpoint
    from curation.models.registered import write_registered
    from curation.unlearning.operators import UnlearnConfig, save_unlearned, unlearn
    from curation.unlearning.requests import read_request, split_forget_retain

    mapping = read_yaml_mapping(config_path)
    mapping = {**mapping, "method": method}
    if steps is not None:
        mapping["steps"] = steps
    if lr is not None:
        mapping["learning_rate"] = lr
    cfg = load(UnlearnConfig, mapping, where=config_path or "options")
    adapter, model = load_model(model_ref)
    train = read_table(train_path)
    forget, retain = split_forget_retain(train, read_request(request_path, train))
    result = unlearn(adapter, model, forget, retain, cfg)
    save_unlearned(out_path, adapter, result, cfg, base=str(resolve_checkpoint(model_ref)))
    click.echo(f"{out_path}: {cfg.method} forgot {forget.height} rows (kept {retain.height}) "
               f"in {result.seconds:.1f}s")
    if register_as:
        from curation.tracking import RunRecorder
        from curation.tracking.registry import register_checkpoint

        with RunRecorder("unlearn", cfg, metrics_path=Path(out_path).with_suffix(".metrics.json")) as rec:
            version = register_checkpoint(out_path, register_as, tags={"unlearning.method": cfg.method})
            rec.log_metrics({"forget_examples": forget.height, "unlearn_seconds": result.seconds})
        uri = f"models:/{register_as}/{version}"
        write_registered(out_path, uri)
        click.echo(f"registered as {uri}")
