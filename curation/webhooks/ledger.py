"""The webhook ledger (sqlite): delivery ids seen (replay protection) and one job row per model version.

Admitting a delivery is one transaction: the delivery id is claimed, the body parsed, and the job for
(model name, version) inserted if absent. If anything in it fails the transaction rolls back, so MLflow's retry of
the same delivery (same id) is not mistaken for a replay. Duplicate deliveries of one event, and the
``model_version.created`` + ``model_version_alias.created`` pair for one version, give exactly one job.
A running job records its owner (host and process id), so a second receiver starting on the same ledger puts back
in the queue only the jobs whose process is gone, never one another live process is running.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (delivery_id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    model_name TEXT NOT NULL, version TEXT NOT NULL, event TEXT NOT NULL, delivery_id TEXT NOT NULL,
    status TEXT NOT NULL, queued_at REAL NOT NULL, started_at REAL, finished_at REAL, run_id TEXT, detail TEXT,
    PRIMARY KEY (model_name, version)
);
"""
DELIVERY_RETENTION_S = 7 * 24 * 3600  # far beyond the timestamp tolerance, after which a replay is stale anyway


@dataclass(frozen=True)
class QueuedJob:
    """One curation job for one model version."""

    model_name: str
    version: str
    event: str
    status: str
    run_id: str | None = None
    detail: str | None = None

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


@dataclass(frozen=True)
class Admission:
    """Outcome of admitting a delivery: ``replay`` (id seen before), ``ignored`` (event we do not act on),
    ``queued`` (a new job) or ``duplicate`` (that version already has a job)."""

    outcome: str
    model_name: str | None = None
    version: str | None = None


class Ledger:
    """sqlite-backed ledger; every method opens its own connection, so it is safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(SCHEMA)
            if "owner" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
                conn.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")  # ledgers written before owners existed

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def admit(self, delivery_id: str, parse: Callable[[], tuple[str, str, str] | None]) -> Admission:
        """Claim ``delivery_id``; then ``parse()`` -> (event, model name, version) or None, and queue its job."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute("DELETE FROM deliveries WHERE received_at < ?", (now - DELIVERY_RETENTION_S,))
            claimed = conn.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?)", (delivery_id, now)).rowcount
            if not claimed:
                return Admission("replay")
            parsed = parse()
            if parsed is None:
                return Admission("ignored")
            event, name, version = parsed
            inserted = conn.execute(
                "INSERT OR IGNORE INTO jobs (model_name, version, event, delivery_id, status, queued_at) "
                "VALUES (?, ?, ?, ?, 'queued', ?)", (name, version, event, delivery_id, now),
            ).rowcount
            return Admission("queued" if inserted else "duplicate", name, version)

    def claim_next(self) -> QueuedJob | None:
        """Mark the oldest queued job running and return it (None when the queue is empty)."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT model_name, version, event FROM jobs WHERE status = 'queued' ORDER BY queued_at LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE jobs SET status = 'running', started_at = ?, owner = ? WHERE model_name = ? "
                         "AND version = ?", (time.time(), _owner(), row[0], row[1]))
            return QueuedJob(row[0], row[1], row[2], "running")

    def finish(self, job: QueuedJob, status: str, *, run_id: str | None = None, detail: str | None = None) -> None:
        """Record how a job ended (``succeeded``, ``failed``, ``skipped``)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, run_id = ?, detail = ? WHERE model_name = ? "
                "AND version = ?", (status, time.time(), run_id, detail, job.model_name, job.version),
            )

    def requeue_interrupted(self) -> int:
        """Put jobs left ``running`` by a stopped receiver back in the queue; return how many.

        A job whose owner is a live process on this host (another receiver on the same ledger) stays running;
        one owned by another host is left alone too, since its process cannot be checked from here.
        """
        host = socket.gethostname()
        with self._transaction() as conn:
            rows = conn.execute("SELECT model_name, version, owner FROM jobs WHERE status = 'running'").fetchall()
            gone = [(name, version) for name, version, owner in rows if _stopped(owner, host)]
            conn.executemany("UPDATE jobs SET status = 'queued', owner = NULL WHERE model_name = ? AND version = ?",
                             gone)
            return len(gone)

    def jobs(self) -> list[QueuedJob]:
        """All jobs, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT model_name, version, event, status, run_id, detail FROM jobs ORDER BY queued_at"
            ).fetchall()
        return [QueuedJob(*row) for row in rows]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _stopped(owner: str | None, host: str) -> bool:
    """Whether the process that claimed a job (``host:pid``) is gone; no owner (an old ledger) counts as gone, and
    so does this very process (it has claimed nothing yet when it requeues: the row is from an earlier process
    that had the same pid, as a restarted container's main process does)."""
    if not owner:
        return True
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != host:
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False
