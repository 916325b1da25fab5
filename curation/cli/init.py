"""``curate init``: add the curation stage blocks to a project's dvc.yaml and params.yaml."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click


def merge_blocks(target: Path, blocks_text: str, *, under: str | None) -> list[str]:
    """Add top-level (or ``under``-nested) blocks missing from ``target``; keeps existing content and comments.

    Returns the names added. The file is rewritten atomically.
    """
    from ruamel.yaml import YAML

    from curation.io.atomic import atomic_path

    yaml = YAML()
    yaml.preserve_quotes = True
    blocks = yaml.load(blocks_text) or {}
    doc = yaml.load(target.read_text(encoding="utf-8")) if target.exists() else None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise click.ClickException(f"{target}: expected a mapping at the top level")
    container = doc.setdefault(under, {}) if under else doc
    if container is None:
        container = doc[under] = {}
    added = [name for name in blocks if name not in container]
    for name in added:
        container[name] = blocks[name]
    if added:
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            yaml.dump(doc, fh)
    return added


@click.command("init")
@click.option("--dir", "project", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Project root holding dvc.yaml and params.yaml.")
def init_cmd(project: str) -> None:
    """Add the curation stages to DIR/dvc.yaml and their params blocks to DIR/params.yaml.

    Existing stages and params blocks are left as they are; only missing ones are added.

    \b
    Example:
      curate init && $EDITOR params.yaml && dvc repro
    """
    root = Path(project)
    templates = resources.files("curation.templates")
    stages = merge_blocks(root / "dvc.yaml", templates.joinpath("dvc_stages.yaml").read_text(), under="stages")
    params = merge_blocks(root / "params.yaml", templates.joinpath("params_blocks.yaml").read_text(), under=None)
    click.echo(f"dvc.yaml: added stages {', '.join(stages) or '(none; all present)'}")
    click.echo(f"params.yaml: added blocks {', '.join(params) or '(none; all present)'}")
    click.echo("Next: point params.yaml at your tables and checkpoints, then run `dvc repro`.")
