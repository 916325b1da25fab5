"""``curate hooks``: the MLflow registry webhook (install it on a server, run the receiver, list its jobs)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from curation.errors import CurationError

SECRET_ENV = "CURATION_WEBHOOK_SECRET"
LEDGER = "webhooks.sqlite"


def _secret() -> str:
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < 16:
        raise CurationError(f"{SECRET_ENV}: set it to a shared secret of at least 16 characters "
                            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return secret


@click.group("hooks")
def hooks_group() -> None:
    """Rerun curation when a model version is registered (MLflow webhooks, HMAC-signed).

    The receiver verifies X-MLflow-Signature and the timestamp, rejects replays, queues one job per model
    version, runs `dvc repro TARGET` (trigger=webhook) and tags the version with the job's verdicts.
    The MLflow *server* needs MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a fixed Fernet key) and, for a receiver on
    loopback, MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true.

    \b
    Example:
      export CURATION_WEBHOOK_SECRET=...  MLFLOW_TRACKING_URI=http://127.0.0.1:5000
      curate hooks install --url http://127.0.0.1:5056/
      curate hooks serve --port 5056 --target build_report
    """


@hooks_group.command("install")
@click.option("--url", required=True, help="Where the MLflow server reaches `curate hooks serve`.")
@click.option("--name", default="curation", show_default=True, help="Webhook name (updated if it exists).")
@click.option("--server", default=None, help="Tracking server URI (default: MLFLOW_TRACKING_URI).")
@click.option("--test", "send_test", is_flag=True, help="Ask the server to send a test event afterwards.")
def install_cmd(url: str, name: str, server: str | None, send_test: bool) -> None:
    """Register (or update) the webhook on the MLflow server for model_version.created / alias.created.

    The secret is CURATION_WEBHOOK_SECRET; the server stores it Fernet-encrypted with its
    MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY.

    \b
    Example:
      curate hooks install --url http://127.0.0.1:5056/ --server http://127.0.0.1:5000 --test
    """
    from curation.tracking.webhooks import install_webhook, send_test_event

    if not (server or os.environ.get("MLFLOW_TRACKING_URI", "")).startswith(("http://", "https://")):
        raise CurationError("--server / MLFLOW_TRACKING_URI: webhooks need an MLflow tracking server (http[s]://)")
    info = install_webhook(name, url, secret=_secret(), server_uri=server)
    click.echo(f"webhook {info.name} ({info.webhook_id}) {info.action}: {', '.join(info.events)} -> {info.url}")
    if send_test:
        ok, status, error = send_test_event(info.webhook_id, server_uri=server)
        click.echo(f"test event: {'delivered' if ok else 'FAILED'} (HTTP {status}) {error}".rstrip())
        if not ok:
            raise SystemExit(1)


@hooks_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=5056, show_default=True, type=int, help="Port to listen on.")
@click.option("--target", default="", help="DVC target a job reproduces (default: the whole pipeline).")
@click.option("--tolerance", default=300.0, show_default=True, type=float,
              help="Reject deliveries whose timestamp is further than this many seconds from now.")
@click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="DVC project folder the jobs run in (webhooks.sqlite is kept there).")
@click.option("--rerun/--no-rerun", default=None,
              help="Run the --target stage for every new version even if its DVC inputs did not change (it reads "
                   "CURATION_MODEL_URI). Default: on when --target is given.")
def serve_cmd(host: str, port: int, target: str, tolerance: float, project_dir: str, rerun: bool | None) -> None:
    """Receive MLflow webhooks and run one curation job per new model version, until Ctrl-C / SIGTERM.

    \b
    Example:
      CURATION_WEBHOOK_SECRET=... curate hooks serve --port 5056 --target test_provenance
    """
    import signal
    import threading

    from curation.cli.schedule import check_target
    from curation.webhooks import JobWorker, Ledger, WebhookReceiver

    if target:
        check_target(project_dir, target)
    ledger = Ledger(Path(project_dir) / LEDGER)
    rerun = bool(target) if rerun is None else rerun
    if rerun and not target:
        raise click.UsageError("--rerun needs --target: forcing the whole pipeline would retrain everything")
    worker = JobWorker(ledger, project_dir=project_dir, target=target, rerun=rerun)
    receiver = WebhookReceiver(secret=_secret(), ledger=ledger, host=host, port=port, tolerance_s=tolerance,
                               on_queued=worker.wake)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    worker.start()
    receiver.start()
    command = f"dvc repro --force --single-item {target}" if rerun else f"dvc repro {target}".strip()
    click.echo(f"webhook receiver on {receiver.url}; jobs run `{command}` in "
               f"{Path(project_dir).resolve()}; Ctrl-C stops it")
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        worker.stop()


@hooks_group.command("jobs")
@click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False))
def jobs_cmd(project_dir: str) -> None:
    """List webhook jobs (one per model version) and their status.

    \b
    Example:
      curate hooks jobs
    """
    from curation.webhooks import Ledger

    path = Path(project_dir) / LEDGER
    jobs = Ledger(path).jobs() if path.exists() else []
    if not jobs:
        click.echo("no webhook jobs yet")
    for job in jobs:
        click.echo(f"{job.model_uri:<40} {job.event:<28} {job.status:<10} {job.run_id or ''}")
