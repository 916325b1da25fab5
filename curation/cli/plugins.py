"""``curate plugins``: list registered plugins and whether they load."""

from __future__ import annotations

import click


@click.command("plugins")
@click.option("--group", default=None, help="Only this entry-point group, e.g. curation.model_adapters.")
def plugins_cmd(group: str | None) -> None:
    """List plugins registered through entry points, with their load status.

    \b
    Example:
      curate plugins --group curation.model_adapters
    """
    from curation.plugins import list_plugins

    entries = list_plugins(group)
    if not entries:
        click.echo("no plugins registered")
    for e in entries:
        status = "ok" if e.error is None else f"FAILED: {e.error}"
        click.echo(f"{e.group:32s} {e.name:24s} {e.target:60s} {status}")
