"""Register the curation webhook with an MLflow tracking server (``MlflowClient().create_webhook``).

Server-side settings MLflow needs (they are read by the *server* process, not by this client):
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` (a fixed Fernet key; without it the server encrypts secrets with a random
per-process key and cannot read them after a restart), and for a receiver on loopback or a private network
``MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https`` and ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true``.
"""

from __future__ import annotations

from dataclasses import dataclass

from curation.tracking.env import quiet_telemetry, tracking_uri

quiet_telemetry()
from mlflow import MlflowClient

WEBHOOK_EVENTS = ("model_version.created", "model_version_alias.created")


@dataclass(frozen=True)
class WebhookInfo:
    """The registered webhook: id, name, url, events, and whether it was ``created`` or ``updated``."""

    webhook_id: str
    name: str
    url: str
    events: tuple[str, ...]
    action: str


def install_webhook(name: str, url: str, *, secret: str, server_uri: str | None = None,
                    events: tuple[str, ...] = WEBHOOK_EVENTS) -> WebhookInfo:
    """Create webhook ``name`` for ``events`` pointing at ``url`` (or update the one with that name)."""
    client = MlflowClient(tracking_uri=server_uri or tracking_uri())
    existing = {hook.name: hook for hook in client.list_webhooks(max_results=1000)}
    if name in existing:
        hook = client.update_webhook(existing[name].webhook_id, url=url, events=list(events), secret=secret,
                                     status="ACTIVE")
        action = "updated"
    else:
        hook = client.create_webhook(name, url, list(events), description="curation: rerun curation stages",
                                     secret=secret)
        action = "created"
    return WebhookInfo(hook.webhook_id, hook.name, hook.url, tuple(str(e) for e in hook.events), action)


def send_test_event(webhook_id: str, *, server_uri: str | None = None) -> tuple[bool, int | None, str]:
    """Ask the server to send a test event to the webhook: (success, HTTP status, error message)."""
    result = MlflowClient(tracking_uri=server_uri or tracking_uri()).test_webhook(webhook_id)
    return bool(result.success), result.response_status, result.error_message or ""
