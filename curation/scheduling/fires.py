"""One execution per fire, however many schedulers share a job store.

APScheduler 3 has no inter-process coordination: two ``curate schedule serve`` processes over one
``schedules.sqlite`` (a second host, a restarted unit whose old process lingers) both see a job due and both run
it. The project lock only serialises them, so the second would still run the same fire afterwards. Here each fire,
the pair (job id, scheduled run time), is *claimed* with a primary-key insert in a table of the same sqlite file
before the executor runs it; the process whose insert loses skips that fire. The claim is one atomic statement,
not a check-then-insert, so it holds under any interleaving of processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor

log = logging.getLogger(__name__)
SCHEMA = ("CREATE TABLE IF NOT EXISTS curation_fire_claims (job_id TEXT NOT NULL, run_time TEXT NOT NULL, "
          "claimed_at REAL NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY (job_id, run_time))")
CLAIM_RETENTION_S = 30 * 24 * 3600  # far beyond any misfire grace time, after which a fire cannot be run anyway


class FireClaims:
    """The claim table in the schedule store's sqlite file."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        with self._connect() as conn:
            conn.execute(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # autocommit: each statement atomic
        try:
            yield conn
        finally:
            conn.close()

    def claim(self, job_id: str, run_time: datetime) -> bool:
        """True for exactly one caller per (job id, run time), across threads and processes."""
        now = time.time()
        key = run_time.astimezone(UTC).isoformat()
        with self._connect() as conn:
            conn.execute("DELETE FROM curation_fire_claims WHERE claimed_at < ?", (now - CLAIM_RETENTION_S,))
            return conn.execute("INSERT OR IGNORE INTO curation_fire_claims VALUES (?, ?, ?, ?)",
                                (job_id, key, now, os.getpid())).rowcount == 1


class ClaimingThreadPoolExecutor(ThreadPoolExecutor):
    """APScheduler's thread-pool executor that runs only the fires this process claimed."""

    def __init__(self, claims: FireClaims, max_workers: int = 2) -> None:
        super().__init__(max_workers)
        self.claims = claims

    def submit_job(self, job: Any, run_times: Sequence[datetime]) -> None:
        claimed = [t for t in run_times if self.claims.claim(job.id, t)]
        if not claimed:
            log.info("schedule %s: fire at %s already taken by another scheduler; skipped", job.id,
                     run_times[-1] if run_times else "?")
            return
        super().submit_job(job, claimed)
