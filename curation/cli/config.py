"""``curate config``: explain and check the params blocks of the built-in stages."""

from __future__ import annotations

from pathlib import Path

import click

from curation.stages import STAGE_CONFIGS


@click.group("config")
def config_group() -> None:
    """Explain or check params.yaml blocks.

    \b
    Example:
      curate config explain train_lm
      curate config check params.yaml
    """


@config_group.command("explain")
@click.argument("stage", type=click.Choice(sorted(STAGE_CONFIGS)))
def explain_cmd(stage: str) -> None:
    """List every key of STAGE's params block with its default and help text.

    \b
    Example:
      curate config explain train_classifier
    """
    from curation.config import explain

    for key, default, help_text in explain(STAGE_CONFIGS[stage]()):
        click.echo(f"{stage}.{key} = {default}\n    {help_text}")


@config_group.command("check")
@click.argument("params_file", type=click.Path(exists=True, dir_okay=False), default="params.yaml")
def check_cmd(params_file: str) -> None:
    """Load every known stage block of PARAMS_FILE strictly (unknown keys, wrong types) and report.

    \b
    Example:
      curate config check params.yaml
    """
    import yaml

    from curation.config import config_hash, load

    params = yaml.safe_load(Path(params_file).read_text(encoding="utf-8")) or {}
    for stage, block in params.items():
        if stage in STAGE_CONFIGS:
            cfg = load(STAGE_CONFIGS[stage](), block, where=f"{params_file}:{stage}")
            click.echo(f"{stage}: ok (config hash {config_hash(cfg)})")
