"""Webhook receiver over real HTTP: signatures (checked against MLflow's own signer), stale timestamps,
replays, malformed bodies, and exactly one job per model version under 50 duplicate deliveries."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation.webhooks import Ledger, WebhookReceiver, sign, verify_request
from curation.webhooks.signature import WebhookRejected

SECRET = "s3cret-for-tests-0123456789"


def event_body(name: str = "curation-demo-lm", version: str = "3", action: str = "created",
               entity: str = "model_version") -> bytes:
    data = {"name": name, "version": version, "source": "models:/m-1", "run_id": "abc", "tags": {},
            "description": None}
    if entity == "model_version_alias":
        data = {"name": name, "alias": "champion", "version": version}
    return json.dumps({"entity": entity, "action": action, "timestamp": "2026-11-29T02:00:00+00:00",
                       "data": data}).encode()


def headers(body: bytes, *, secret: str = SECRET, delivery_id: str | None = None, timestamp: int | None = None
            ) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign(secret, delivery_id, ts, body)}


class Receiver:
    def __init__(self, tmp: Path) -> None:
        self.ledger = Ledger(tmp / "webhooks.sqlite")
        self.wakeups = 0
        self._lock = threading.Lock()
        self.server = WebhookReceiver(secret=SECRET, ledger=self.ledger, port=0, path="/hook",
                                      on_queued=self._woken).start()

    def _woken(self) -> None:
        with self._lock:
            self.wakeups += 1

    def post(self, body: bytes, hdrs: dict[str, str], path: str = "/hook") -> tuple[int, dict]:
        host, port = self.server.server.server_address[:2]
        request = urllib.request.Request(f"http://{host}:{port}{path}", data=body, headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture()
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = Receiver(tmp_path)
    yield rec
    rec.server.stop()


def test_signature_matches_mlflows_own_signer() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = event_body().decode()
    assert sign(SECRET, "d-1", "1764381600", body) == _generate_hmac_signature(SECRET, "d-1", "1764381600", body)


def test_valid_signature_is_accepted_and_queues_a_job(receiver: Receiver) -> None:
    body = event_body()
    status, answer = receiver.post(body, headers(body))
    assert (status, answer) == (202, {"outcome": "queued"})
    [job] = receiver.ledger.jobs()
    assert (job.model_uri, job.event, job.status) == ("models:/curation-demo-lm/3", "model_version.created", "queued")
    assert receiver.wakeups == 1


@pytest.mark.parametrize("tamper", ["wrong_secret", "body_changed", "id_changed", "timestamp_changed", "garbage"])
def test_bad_signature_is_rejected(receiver: Receiver, tamper: str) -> None:
    body = event_body()
    hdrs = headers(body, secret="another-secret-0123456789" if tamper == "wrong_secret" else SECRET)
    if tamper == "body_changed":
        body = event_body(version="4")
    elif tamper == "id_changed":
        hdrs["X-MLflow-Delivery-Id"] = str(uuid.uuid4())
    elif tamper == "timestamp_changed":
        hdrs["X-MLflow-Timestamp"] = str(int(hdrs["X-MLflow-Timestamp"]) - 1)
    elif tamper == "garbage":
        hdrs["X-MLflow-Signature"] = "v1,AAAA"
    status, answer = receiver.post(body, hdrs)
    assert status == 401 and answer["error"] == "bad signature"
    assert receiver.ledger.jobs() == []


@pytest.mark.parametrize("age_s", [301, -301, 86400])
def test_stale_timestamp_is_rejected(receiver: Receiver, age_s: int) -> None:
    body = event_body()
    status, answer = receiver.post(body, headers(body, timestamp=int(time.time()) - age_s))
    assert status == 401 and answer["error"].startswith("stale timestamp")
    assert receiver.ledger.jobs() == []


def test_replay_is_rejected(receiver: Receiver) -> None:
    body = event_body()
    hdrs = headers(body)
    assert receiver.post(body, hdrs)[0] == 202
    status, answer = receiver.post(body, hdrs)
    assert status == 409 and answer["error"].startswith("replay")
    assert len(receiver.ledger.jobs()) == 1


def test_replay_is_detected_before_the_body_is_parsed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "w.sqlite")
    parsed: list[int] = []

    def parse() -> tuple[str, str, str]:
        parsed.append(1)
        return "model_version.created", "m", "1"

    assert ledger.admit("d-1", parse).outcome == "queued"
    assert ledger.admit("d-1", parse).outcome == "replay"
    assert len(parsed) == 1


def test_failed_admission_does_not_burn_the_delivery_id(tmp_path: Path) -> None:
    """MLflow retries a 5xx with the same delivery id; that retry must not be taken for a replay."""
    ledger = Ledger(tmp_path / "w.sqlite")

    def broken() -> tuple[str, str, str]:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ledger.admit("d-1", broken)
    assert ledger.admit("d-1", lambda: ("model_version.created", "m", "1")).outcome == "queued"


def test_fifty_duplicate_deliveries_give_exactly_one_job(receiver: Receiver) -> None:
    body = event_body(version="7")
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def deliver() -> None:
        result = receiver.post(body, headers(body))  # each delivery has its own id, like MLflow's re-sends
        with lock:
            answers.append(result)

    threads = [threading.Thread(target=deliver) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    alias = event_body(version="7", entity="model_version_alias")
    answers.append(receiver.post(alias, headers(alias)))
    outcomes = [a[1]["outcome"] for a in answers]
    assert all(a[0] == 202 for a in answers)
    assert outcomes.count("queued") == 1 and outcomes.count("duplicate") == 50
    assert [j.model_uri for j in receiver.ledger.jobs()] == ["models:/curation-demo-lm/7"]
    assert receiver.wakeups == 1


def test_other_events_and_malformed_bodies(receiver: Receiver) -> None:
    other = event_body(entity="registered_model")
    assert receiver.post(other, headers(other)) == (202, {"outcome": "ignored"})
    for bad in (b"not json", json.dumps({"entity": "model_version", "action": "created",
                                         "data": {"name": "m"}}).encode()):
        status, _ = receiver.post(bad, headers(bad))
        assert status == 400
    body = event_body()
    assert receiver.post(body, headers(body), path="/elsewhere")[0] == 404
    unsigned = {k: v for k, v in headers(body).items() if k != "X-MLflow-Signature"}
    assert receiver.post(body, unsigned)[0] == 400
    assert receiver.ledger.jobs() == []


def test_verify_request_refuses_an_empty_secret() -> None:
    body = event_body()
    with pytest.raises(ValueError):
        verify_request("", headers(body), body)
    with pytest.raises(WebhookRejected):
        verify_request(SECRET, {}, body)
