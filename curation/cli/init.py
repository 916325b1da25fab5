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


def _commented(params_text: str) -> str:
    """The shipped params blocks with every key's help text as a comment beside it."""
    import io

    from ruamel.yaml import YAML

    from curation.templates import commented_params

    yaml = YAML()
    buffer = io.StringIO()
    yaml.dump(commented_params(yaml.load(params_text)), buffer)
    return buffer.getvalue()


@click.command("init")
@click.option("--dir", "project", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Project root holding dvc.yaml and params.yaml.")
def init_cmd(project: str) -> None:
    """Add every curation stage to DIR/dvc.yaml and its commented params block to DIR/params.yaml.

    The stages are the demo pipeline's, runnable as written (prepare_data builds the demo tables); point the
    blocks at your own tables and checkpoints. Existing stages and params blocks are left as they are; only
    missing ones are added.

    \b
    Example:
      curate init && $EDITOR params.yaml && dvc repro
    """
    root = Path(project)
    templates = resources.files("curation.templates")
    stages = merge_blocks(root / "dvc.yaml", templates.joinpath("dvc_stages.yaml").read_text(), under="stages")
    params = merge_blocks(root / "params.yaml", _commented(templates.joinpath("params_blocks.yaml").read_text()),
                          under=None)
    click.echo(f"dvc.yaml: added stages {', '.join(stages) or '(none; all present)'}")
    click.echo(f"params.yaml: added blocks {', '.join(params) or '(none; all present)'}")
    click.echo("Next: point params.yaml at your tables and checkpoints, then run `dvc repro`.")
