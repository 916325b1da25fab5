"""MLflow webhook signatures: ``v1,<base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}"))>``.

``verify_request`` checks the headers and the raw body bytes, in constant time, before the body is parsed, and
rejects timestamps outside a tolerance window so that a captured request cannot be replayed later (replays inside
the window are caught by the delivery-id ledger).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


class WebhookRejected(Exception):
    """A delivery failed verification; ``status`` is the HTTP status to answer with, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes | str) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for this delivery."""
    payload = body.decode("utf-8") if isinstance(body, bytes) else body
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{payload}".encode(), hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise WebhookRejected(400, f"missing header {name}")


def verify_request(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> str:
    """Check signature and timestamp of one delivery; return its delivery id or raise ``WebhookRejected``."""
    if not secret:
        raise ValueError("webhook secret is empty; refusing to accept unsigned deliveries")
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    try:
        body.decode("utf-8")
        sent_at = int(timestamp)
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, "malformed timestamp or body encoding") from None
    expected = sign(secret, delivery_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate.strip()) for candidate in signature.split(" ")):
        raise WebhookRejected(401, "bad signature")
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance_s:
        raise WebhookRejected(401, f"stale timestamp ({now - sent_at:+.0f} s outside ±{tolerance_s:.0f} s)")
    return delivery_id
