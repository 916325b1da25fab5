"""``curate ui``: serve the MLflow UI on the embedded store."""

from __future__ import annotations

import os
import subprocess

import click


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it on loopback).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on.")
def ui_cmd(host: str, port: int) -> None:
    """Serve the MLflow UI over the same store the stages log to (MLFLOW_TRACKING_URI or ./mlflow.db).

    \b
    Example:
      curate ui --port 5000     # then open http://127.0.0.1:5000
    """
    from curation.tracking.env import quiet_telemetry
    from curation.tracking.ui import ui_command

    quiet_telemetry()
    argv = ui_command(host=host, port=port)
    click.echo(f"MLflow UI on http://{host}:{port} (store {argv[argv.index('--backend-store-uri') + 1]}); Ctrl-C stops it")
    try:
        raise SystemExit(subprocess.call(argv, env=os.environ.copy()))
    except KeyboardInterrupt:
        raise SystemExit(0) from None
