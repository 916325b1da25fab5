"""The schedule table: an APScheduler 3 SQLAlchemy job store on ``schedules.sqlite`` beside the project.

Jobs reference ``curation.scheduling.jobs:scheduled_job`` textually and carry only JSON-able keyword arguments,
so a restarted ``serve`` (or another process running ``list``) sees the same jobs and next fire times.
Administrative commands open the store with the scheduler started *paused*, so they never execute a job.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from curation.errors import CurationError
from curation.scheduling.fires import ClaimingThreadPoolExecutor, FireClaims

log = logging.getLogger(__name__)
SCHEDULE_DB = "schedules.sqlite"
JOB_FUNC = "curation.scheduling.jobs:scheduled_job"
# coalesce: fires missed while the scheduler was down (or busy) collapse into one catch-up run;
# max_instances=1: a job never overlaps itself; misfire_grace_time: a fire up to 6 h late still runs (once).
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _NoJobsAfterShutdown:
    """APScheduler 3's main loop runs ``_process_jobs`` once more after ``shutdown()`` has set STOPPED, so a
    scheduler being stopped (``serve`` on SIGTERM, or the paused one ``list``/``add`` open and close) would submit
    a due fire to its shut-down executor and then advance the job past it: the fire ran nowhere. Stopped, it
    touches no job."""

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:  # type: ignore[attr-defined]
            return None
        return super()._process_jobs()  # type: ignore[misc]


class _BlockingScheduler(_NoJobsAfterShutdown, BlockingScheduler):
    pass


class _BackgroundScheduler(_NoJobsAfterShutdown, BackgroundScheduler):
    pass


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as stored: its name, cron text, DVC target, pull flag and next fire time (None if paused)."""

    name: str
    cron: str
    target: str
    pull: bool
    project_dir: str
    next_run_time: datetime | None


def store_url(project_dir: str | Path) -> str:
    """SQLAlchemy URL of the project's schedule store."""
    return f"sqlite:///{Path(project_dir).resolve() / SCHEDULE_DB}"


def make_scheduler(
    project_dir: str | Path,
    *,
    blocking: bool = False,
    workers: int = 2,
    job_defaults: dict[str, Any] | None = None,
) -> BaseScheduler:
    """A scheduler over the project's job store (UTC), with ``JOB_DEFAULTS`` unless overridden.

    Its executor claims each fire in the store before running it (``fires``), so several schedulers over one
    store (two ``serve`` processes, a second host) run every fire exactly once between them.
    """
    cls = _BlockingScheduler if blocking else _BackgroundScheduler
    claims = FireClaims(Path(project_dir).resolve() / SCHEDULE_DB)
    return cls(
        jobstores={"default": SQLAlchemyJobStore(url=store_url(project_dir))},
        executors={"default": ClaimingThreadPoolExecutor(claims, workers)},
        job_defaults={**JOB_DEFAULTS, **(job_defaults or {})},
        timezone="UTC",
    )


@contextlib.contextmanager
def open_store(project_dir: str | Path) -> Iterator[BaseScheduler]:
    """The project's scheduler, started paused (no job runs) for reading and editing schedules."""
    scheduler = make_scheduler(project_dir)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def parse_cron(cron: str, *, timezone: str = "UTC") -> CronTrigger:
    """A five-field crontab expression (``min hour day month weekday``) as a trigger; bad text -> CurationError."""
    try:
        return CronTrigger.from_crontab(cron, timezone=timezone)
    except (ValueError, TypeError, LookupError) as exc:
        raise CurationError(f"--cron {cron!r}: {exc}") from None


def add_schedule(
    project_dir: str | Path, name: str, *, cron: str, target: str, pull: bool = False, replace: bool = False,
    timezone: str = "UTC",
) -> ScheduleInfo:
    """Store a schedule that runs ``dvc repro target`` at ``cron``; an existing name needs ``replace=True``."""
    if not NAME_RE.match(name):
        raise CurationError(f"schedule name {name!r}: use letters, digits, '_', '.', '-' (start alphanumeric)")
    trigger = parse_cron(cron, timezone=timezone)
    project = str(Path(project_dir).resolve())
    with open_store(project) as scheduler:
        if scheduler.get_job(name) is not None and not replace:
            raise CurationError(f"schedule {name!r}: already exists (remove it first, or pass --replace)")
        scheduler.add_job(
            JOB_FUNC, trigger, id=name, name=name, replace_existing=True,
            kwargs={"name": name, "target": target, "project_dir": project, "pull": pull, "cron": cron},
        )
        return _info(scheduler.get_job(name))


def list_schedules(project_dir: str | Path) -> list[ScheduleInfo]:
    """All stored schedules, soonest next fire first."""
    if not (Path(project_dir) / SCHEDULE_DB).exists():
        return []
    with open_store(project_dir) as scheduler:
        return [_info(job) for job in scheduler.get_jobs()]


def get_schedule(project_dir: str | Path, name: str) -> ScheduleInfo:
    """One stored schedule; an unknown name -> CurationError with a did-you-mean hint."""
    with open_store(project_dir) as scheduler:
        job = scheduler.get_job(name)
        if job is None:
            raise _unknown(name, [j.id for j in scheduler.get_jobs()])
        return _info(job)


def remove_schedule(project_dir: str | Path, name: str) -> None:
    """Delete a stored schedule."""
    with open_store(project_dir) as scheduler:
        try:
            scheduler.remove_job(name)
        except JobLookupError:
            raise _unknown(name, [j.id for j in scheduler.get_jobs()]) from None


def serve(project_dir: str | Path, *, workers: int = 2) -> None:
    """Run the stored schedules in the foreground until SIGINT/SIGTERM (for systemd, cron @reboot, a terminal)."""
    scheduler = make_scheduler(project_dir, blocking=True, workers=workers)
    scheduler.add_listener(_log_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the scheduler (running jobs finish first)", signum)
        scheduler.shutdown(wait=True)  # their outcome is logged before the process exits

    signal.signal(signal.SIGTERM, stop)
    for info in list_schedules(project_dir):
        log.info("schedule %s: `dvc repro %s` at %r, next %s", info.name, info.target, info.cron,
                 info.next_run_time)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        scheduler.shutdown(wait=False)


def _log_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning("schedule %s: fire at %s missed beyond the grace time", event.job_id, event.scheduled_run_time)
    elif event.exception is not None:
        log.error("schedule %s: failed (%s); recorded in MLflow, the scheduler carries on", event.job_id,
                  str(event.exception).splitlines()[0] if str(event.exception) else type(event.exception).__name__)
    else:
        log.info("schedule %s: fire %s: %s", event.job_id, event.scheduled_run_time.isoformat(), event.retval)


def _info(job: Any) -> ScheduleInfo:
    kw = job.kwargs
    return ScheduleInfo(name=job.id, cron=kw.get("cron", str(job.trigger)), target=kw["target"],
                        pull=bool(kw.get("pull")), project_dir=kw["project_dir"],
                        next_run_time=job.next_run_time)


def _unknown(name: str, names: list[str]) -> CurationError:
    from curation._internal.suggest import did_you_mean

    return CurationError(f"schedule {name!r}: not found{did_you_mean(name, names)}")
