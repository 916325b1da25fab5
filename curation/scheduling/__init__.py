"""Schedules for curation jobs; the only package that imports APScheduler.

A schedule is a cron expression and a DVC target. Its job runs ``dvc repro <target>`` in the project as a person
would (``jobs.run_target``), under a project-wide file lock, as one parent MLflow run. Schedules live in an
APScheduler SQLAlchemy job store (``schedules.sqlite`` beside the project), so they survive restarts; the job
function is referenced textually and its arguments are plain JSON-able values.
"""

from curation.scheduling.jobs import JobFailedError, JobOutcome, run_target
from curation.scheduling.store import (
    ScheduleInfo,
    add_schedule,
    get_schedule,
    list_schedules,
    make_scheduler,
    remove_schedule,
    serve,
)

__all__ = [
    "JobFailedError", "JobOutcome", "ScheduleInfo", "add_schedule", "get_schedule", "list_schedules",
    "make_scheduler", "remove_schedule", "run_target", "serve",
]
