"""HTTP endpoint for MLflow registry webhooks (stdlib ``http.server``, one thread per request).

Order of checks for a POST: size limit, signature and timestamp (``signature.verify_request`` on the raw bytes),
replay (delivery id already in the ledger), and only then JSON parsing; a ``model_version.created`` or
``model_version_alias.created`` event queues one job for that model version. Answers: 202 accepted (queued,
duplicate or ignored event), 400 malformed, 401 bad signature or stale timestamp, 409 replay, 413 too large.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from curation.webhooks.ledger import Ledger
from curation.webhooks.signature import DEFAULT_TOLERANCE_S, WebhookRejected, verify_request

log = logging.getLogger(__name__)
ACCEPTED_EVENTS = ("model_version.created", "model_version_alias.created")
MAX_BODY_BYTES = 1 << 20
READ_TIMEOUT_S = 30.0  # a client that declares more bytes than it sends is cut off, not waited on forever


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # MLflow delivers from a pool of 10 threads and retries; the default of 5 resets


def parse_event(body: bytes) -> tuple[str, str, str] | None:
    """(event, model name, version) of a model-version event; None for other events; malformed -> 400."""
    try:
        payload = json.loads(body)
        event = f"{payload['entity']}.{payload['action']}"
        data = payload.get("data") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WebhookRejected(400, "body is not an MLflow webhook payload") from None
    if event not in ACCEPTED_EVENTS:
        return None
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not name or not str(version or "").isdigit():
        raise WebhookRejected(400, f"{event}: data.name / data.version missing or invalid")
    return event, name, str(version)


class WebhookReceiver:
    """A threaded HTTP server that admits verified deliveries into a ``Ledger`` and calls ``on_queued``."""

    def __init__(
        self, *, secret: str, ledger: Ledger, host: str = "127.0.0.1", port: int = 5056, path: str = "/",
        tolerance_s: float = DEFAULT_TOLERANCE_S, on_queued: Callable[[], None] | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required (set CURATION_WEBHOOK_SECRET)")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = read_timeout_s  # per socket operation; http.server closes a connection that times out

            def do_GET(self) -> None:  # http.server naming
                if self.path.rstrip("/") == "/health":
                    self._answer(200, {"status": "ok"})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                status, answer = receiver.handle(self.path, dict(self.headers.items()), self._body())
                self._answer(status, answer)

            def _body(self) -> bytes | None:
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return None
                return self.rfile.read(length) if 0 <= length <= MAX_BODY_BYTES else None

            def _answer(self, status: int, answer: dict[str, str]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug("%s " + fmt, self.address_string(), *args)

        self.secret = secret
        self.ledger = ledger
        self.path = "/" + path.strip("/")
        self.tolerance_s = tolerance_s
        self.on_queued = on_queued
        self.server = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{'' if self.path == '/' else self.path}"

    def handle(self, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, dict[str, str]]:
        """Verify and admit one delivery; return (HTTP status, JSON answer)."""
        if path.split("?")[0].rstrip("/") != self.path.rstrip("/"):
            return 404, {"error": "not found"}
        if body is None:
            return 413, {"error": f"missing Content-Length or body over {MAX_BODY_BYTES} bytes"}
        try:
            delivery_id = verify_request(self.secret, headers, body, tolerance_s=self.tolerance_s)
            admission = self.ledger.admit(delivery_id, lambda: parse_event(body))
        except WebhookRejected as exc:
            log.warning("webhook delivery rejected: %s", exc.reason)
            return exc.status, {"error": exc.reason}
        if admission.outcome == "replay":
            log.warning("webhook delivery %s rejected: replay", delivery_id)
            return 409, {"error": "replay: delivery id already received"}
        if admission.outcome == "queued":
            log.info("queued curation job for models:/%s/%s", admission.model_name, admission.version)
            if self.on_queued is not None:
                self.on_queued()
        return 202, {"outcome": admission.outcome}

    def start(self) -> WebhookReceiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
