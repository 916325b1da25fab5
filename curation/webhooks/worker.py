"""Runs queued webhook jobs one at a time and files each job's verdicts as tags on its model version.

A job is ``dvc repro <target>`` in the project (``curation.scheduling.run_target`` with trigger=webhook and
``CURATION_MODEL_URI=models:/name/version`` in the stages' environment). With ``rerun`` the target stage runs even
when its DVC inputs are unchanged (a new model version is not a DVC dependency); stages find the version with
``curation.models.registered.examined_model_uri``. Its verdicts, set on the model version:
``curation.job.status`` (succeeded / failed), ``curation.job.run_id`` (the parent MLflow run),
``curation.job.target`` and ``curation.<target>.<metric>`` for each headline figure in ``metrics/<target>.json``.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from curation.models.registered import MODEL_URI_ENV
from curation.scheduling.jobs import JobFailedError, run_target
from curation.webhooks.ledger import Ledger, QueuedJob

log = logging.getLogger(__name__)
LOCK_WAIT_S = 6 * 3600  # a webhook job waits for a running (e.g. scheduled) job instead of being dropped


def job_verdicts(project_dir: Path, target: str, status: str, run_id: str | None) -> dict[str, str]:
    """The tags one job sets on its model version."""
    tags = {"curation.job.target": target, "curation.job.trigger": "webhook"}
    if run_id:
        tags["curation.job.run_id"] = run_id
    metrics_file = project_dir / "metrics" / f"{target}.json"
    if status == "succeeded" and metrics_file.exists():
        for key, value in json.loads(metrics_file.read_text()).items():
            if isinstance(value, (int, float, str, bool)):
                tags[f"curation.{target}.{key}"] = str(value)
    tags["curation.job.status"] = status  # set last: once it is there, every verdict tag is
    return tags


class JobWorker:
    """Background thread draining the ledger's queue; ``wake()`` is called by the receiver on a new job."""

    def __init__(self, ledger: Ledger, *, project_dir: str | Path, target: str, poll_s: float = 30.0,
                 rerun: bool = False) -> None:
        self.ledger = ledger
        self.project_dir = Path(project_dir).resolve()
        self.target = target
        self.rerun = rerun
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> JobWorker:
        requeued = self.ledger.requeue_interrupted()
        if requeued:
            log.info("requeued %d job(s) interrupted by the last shutdown", requeued)
        self._thread = threading.Thread(target=self._loop, name="webhook-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the running job (if any) finishes."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.ledger.claim_next()
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            try:
                self.process(job)
            except Exception as exc:  # e.g. the registry is unreachable for tagging; keep draining the queue
                log.exception("%s: could not finish the job", job.model_uri)
                self.ledger.finish(job, "failed", detail=f"{type(exc).__name__}: {exc}"[:2000])

    def process(self, job: QueuedJob) -> str:
        """Run one job and tag its model version; return the status recorded in the ledger."""
        from curation.tracking.jobs import model_version_exists, tag_model_version

        if not model_version_exists(job.model_name, job.version, project_dir=self.project_dir):
            log.warning("%s: no such model version in the registry (a test delivery?); skipped", job.model_uri)
            self.ledger.finish(job, "skipped", detail="model version not found")
            return "skipped"
        run_id, detail = None, None
        try:
            outcome = run_target(
                self.target, project_dir=self.project_dir, name=f"{job.model_name}-v{job.version}",
                trigger="webhook", lock_wait_s=LOCK_WAIT_S, tags={"curation.model_uri": job.model_uri},
                extra_env={MODEL_URI_ENV: job.model_uri}, force=self.rerun,
            )
            status, run_id = outcome.status, outcome.run_id
        except JobFailedError as exc:
            status, run_id, detail = "failed", exc.run_id, str(exc)
        except Exception as exc:  # recorded in the ledger and on the version; the worker carries on
            log.exception("%s: job crashed", job.model_uri)
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        tag_model_version(job.model_name, job.version, job_verdicts(self.project_dir, self.target, status, run_id),
                          project_dir=self.project_dir)
        self.ledger.finish(job, status, run_id=run_id, detail=detail)
        log.info("%s: job %s (run %s)", job.model_uri, status, run_id)
        return status
