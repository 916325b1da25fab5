"""Webhook receiver faults against the real `curate hooks serve` process on a free localhost port.

Concurrent deliveries from 100 threads give exactly one job per model version; forged, missing, stale and replayed
signatures, malformed JSON, a non-UTF-8 body and a 10 MB body are rejected without a job, and after each fault
the same process still answers and still queues a valid delivery. The body limit is enforced from the headers,
before any body byte is read; a client that declares more bytes than it sends is cut off; the receiver binds to
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from curation.webhooks import Ledger, WebhookReceiver, sign

SECRET = "fault-test-secret-0123456789"
CURATE = str(Path(sys.executable).with_name("curate"))


def event_body(name: str, version: str) -> bytes:
    return json.dumps({"entity": "model_version", "action": "created", "timestamp": "2026-12-06T02:00:00+00:00",
                       "data": {"name": name, "version": version, "source": "models:/m-1", "run_id": "r"}}).encode()


def signed(body: bytes, *, secret: str = SECRET, delivery_id: str | None = None, age_s: int = 0) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    ts = str(int(time.time()) - age_s)
    return {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign(secret, delivery_id, ts, body)}


@dataclass
class Served:
    """The `curate hooks serve` process, its URL and its ledger."""

    proc: subprocess.Popen
    url: str
    ledger: Ledger

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def jobs(self, name: str) -> list[str]:
        return sorted(j.version for j in self.ledger.jobs() if j.model_name == name)

    def assert_up(self) -> None:
        """Still the same process, still healthy, still queueing a valid delivery."""
        assert self.proc.poll() is None, "the receiver process died"
        with urllib.request.urlopen(f"{self.url}/health", timeout=30) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        name = f"alive-{uuid.uuid4().hex[:8]}"
        body = event_body(name, "1")
        assert self.post(body, signed(body)) == (202, {"outcome": "queued"})
        assert self.jobs(name) == ["1"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    project = tmp_path_factory.mktemp("hooks")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(CURATION_WEBHOOK_SECRET=SECRET, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    out = project / "serve.out"
    with out.open("w") as sink:  # no --host: the default bind is under test
        proc = subprocess.Popen([CURATE, "hooks", "serve", "--port", "0", "--project", str(project)],
                                stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while "webhook receiver on " not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        url = out.read_text().split("webhook receiver on ", 1)[1].split(";", 1)[0]
        yield Served(proc, url, Ledger(project / "webhooks.sqlite"))
    finally:  # killed: its job worker may still be opening the embedded MLflow store for the queued versions
        proc.kill()
        proc.wait(30)


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("no /proc/net/tcp on this system")
    found = set()
    for line in table.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_binds_to_localhost_unless_told_otherwise(served: Served) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert listening_addresses(served.port) == {"127.0.0.1"}
    ledger = served.ledger
    default = WebhookReceiver(secret=SECRET, ledger=ledger, port=0)
    everywhere = WebhookReceiver(secret=SECRET, ledger=ledger, host="0.0.0.0", port=0)
    try:
        assert listening_addresses(default.server.server_address[1]) == {"127.0.0.1"}
        assert listening_addresses(everywhere.server.server_address[1]) == {"0.0.0.0"}
    finally:
        default.server.server_close()
        everywhere.server.server_close()


def test_100_concurrent_deliveries_for_one_version_give_exactly_one_job(served: Served) -> None:
    name = "one-version"
    body = event_body(name, "7")
    with ThreadPoolExecutor(100) as pool:  # each its own delivery id, as MLflow's re-sends and duplicates
        answers = list(pool.map(lambda _: served.post(body, signed(body)), range(100)))
    outcomes = [answer["outcome"] for status, answer in answers if status == 202]
    assert len(outcomes) == 100
    assert (outcomes.count("queued"), outcomes.count("duplicate")) == (1, 99)
    assert served.jobs(name) == ["7"]
    served.assert_up()


def test_20_distinct_versions_delivered_concurrently_give_20_jobs(served: Served) -> None:
    name = "twenty-versions"
    bodies = [event_body(name, str(v)) for v in range(1, 21) for _ in range(5)]  # 5 deliveries per version
    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(lambda b: served.post(b, signed(b)), bodies))
    assert all(status == 202 for status, _ in answers)
    assert sum(answer["outcome"] == "queued" for _, answer in answers) == 20
    assert served.jobs(name) == sorted(str(v) for v in range(1, 21))
    served.assert_up()


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        ("forged", 401, "bad signature"),
        ("missing_signature", 400, "missing header X-MLflow-Signature"),
        ("missing_delivery_id", 400, "missing header X-MLflow-Delivery-Id"),
        ("stale", 401, "stale timestamp"),
        ("from_the_future", 401, "stale timestamp"),
        ("malformed_json", 400, "body is not an MLflow webhook payload"),
        ("not_utf8", 400, "malformed timestamp or body encoding"),
    ],
)
def test_bad_deliveries_are_rejected_without_a_job(served: Served, fault: str, status: int, error: str) -> None:
    name = f"fault-{fault}"
    body = {"malformed_json": b'{"entity": "model_version", "action": ', "not_utf8": b"\xff\xfe{}"}.get(
        fault, event_body(name, "1"))
    headers = signed(b"{}" if fault == "not_utf8" else body, secret="forged-secret-0123456789" if fault == "forged" else SECRET,
                     age_s={"stale": 301, "from_the_future": -301}.get(fault, 0))
    headers.pop({"missing_signature": "X-MLflow-Signature",
                 "missing_delivery_id": "X-MLflow-Delivery-Id"}.get(fault, ""), None)
    code, answer = served.post(body, headers)
    assert code == status and answer["error"].startswith(error)
    assert served.jobs(name) == []
    served.assert_up()


def test_replayed_delivery_is_rejected(served: Served) -> None:
    name = "replayed"
    body = event_body(name, "1")
    headers = signed(body)
    assert served.post(body, headers) == (202, {"outcome": "queued"})
    with ThreadPoolExecutor(10) as pool:  # a burst of replays of the captured request
        answers = list(pool.map(lambda _: served.post(body, headers), range(10)))
    assert all(code == 409 and answer["error"].startswith("replay") for code, answer in answers)
    assert served.jobs(name) == ["1"]
    served.assert_up()


def test_a_10_mb_body_is_refused_from_its_headers_before_reading(served: Served) -> None:
    size = 10 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        started = time.monotonic()
        answer = conn.recv(4096)  # not one body byte sent: a receiver reading the body first would block here
    assert answer.startswith(b"HTTP/1.0 413") and time.monotonic() - started < 10
    body = b"{" + b" " * (size - 2) + b"}"
    try:  # the whole 10 MB sent: 413, or the connection reset while the client is still writing
        code, _ = served.post(body, signed(body))
        assert code == 413
    except (ConnectionError, urllib.error.URLError):
        pass
    served.assert_up()


def test_a_client_that_sends_less_than_it_declares_is_cut_off(tmp_path: Path) -> None:
    receiver = WebhookReceiver(secret=SECRET, ledger=Ledger(tmp_path / "w.sqlite"), port=0,
                               read_timeout_s=1.0).start()
    try:
        port = receiver.server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=20) as stalled:
            stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"entity\"")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
                assert response.status == 200  # others are served meanwhile
            started = time.monotonic()
            assert stalled.recv(4096) == b""  # closed by the receiver after its read timeout
            assert time.monotonic() - started < 10
    finally:
        receiver.stop()


def test_a_second_receiver_requeues_only_jobs_whose_process_is_gone(tmp_path: Path) -> None:
    """Two receivers on one ledger: starting the second must not put back a job that a live process (standing in
    for the first receiver) is running, and must put back one whose process died, one without an owner (a ledger
    written before owners were recorded) and one claimed under this process's own pid (an earlier incarnation)."""
    import socket as sock
    import sqlite3

    ledger = Ledger(tmp_path / "webhooks.sqlite")
    for version in ("1", "2", "3"):
        ledger.admit(f"d-{version}", lambda v=version: ("model_version.created", "m", v))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = sock.gethostname()
        with sqlite3.connect(ledger.path) as conn:
            for version, owner in (("1", f"{host}:{alive.pid}"), ("2", f"{host}:{dead.pid}"), ("3", None)):
                conn.execute("UPDATE jobs SET status = 'running', owner = ? WHERE version = ?", (owner, version))
        assert ledger.requeue_interrupted() == 2
        assert {j.version: j.status for j in ledger.jobs()} == {"1": "running", "2": "queued", "3": "queued"}
        claimed = ledger.claim_next()
        assert claimed is not None and claimed.status == "running"
        assert ledger.requeue_interrupted() == 1  # claimed by this process before: an earlier incarnation's row
    finally:
        alive.kill()
        alive.wait()


def test_a_ledger_from_before_owners_gets_the_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE jobs (model_name TEXT NOT NULL, version TEXT NOT NULL, event TEXT NOT NULL, delivery_id TEXT "
            "NOT NULL, status TEXT NOT NULL, queued_at REAL NOT NULL, started_at REAL, finished_at REAL, run_id TEXT, "
            "detail TEXT, PRIMARY KEY (model_name, version));"
            "INSERT INTO jobs VALUES ('m', '1', 'model_version.created', 'd', 'running', 0, 0, NULL, NULL, NULL);")
    ledger = Ledger(path)
    assert ledger.requeue_interrupted() == 1 and ledger.jobs()[0].status == "queued"
