"""One job execution: ``dvc repro <target>`` in the project, under the project lock, as one parent MLflow run.

The job runs exactly the commands a person would type (optionally ``git pull --ff-only`` and ``dvc pull`` first),
so scheduled, webhook-triggered and manual runs behave identically and DVC's caching decides what reruns.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from curation.errors import CurationError

log = logging.getLogger(__name__)
LOCK_DIR = Path(".dvc") / "tmp" / "curation-locks"  # .dvc/tmp is git-ignored by DVC itself
SCHEDULED_LOCK_WAIT_S = 6 * 3600  # a scheduled fire waits (up to the misfire grace) for a running job
LOG_DIR = Path(".dvc") / "tmp" / "curation-logs"  # <run id>/output.log: the commands' output of each job run


class JobFailedError(CurationError):
    """A job's command exited non-zero; its parent MLflow run (``run_id``) is marked FAILED."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True)
class JobOutcome:
    """What one execution did: ``succeeded`` or ``skipped`` (target locked by a running job); a failure raises."""

    status: str
    target: str
    run_id: str | None = None
    returncode: int | None = None
    duration_s: float = 0.0
    log_path: str | None = None


def lock_path(project_dir: str | Path) -> Path:
    """The lock file that serialises jobs in ``project_dir``.

    One lock per project, not per target: ``dvc repro`` holds DVC's repository lock for its whole run, so two
    jobs on different targets of one project would make the second fail with "Unable to acquire lock".
    Serialising per project is therefore what guarantees that a target never runs twice at once *and* that no
    job fails because another one is running.
    """
    return Path(project_dir).resolve() / LOCK_DIR / "repro.lock"


def dvc_executable() -> str:
    """``dvc`` of the running interpreter's environment, else the one on PATH."""
    sibling = Path(sys.executable).with_name("dvc")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("dvc")
    if not found:
        raise CurationError("dvc: executable not found next to the Python interpreter or on PATH")
    return found


def job_commands(target: str, *, pull: bool, project_dir: Path, force: bool = False) -> list[list[str]]:
    """The command lines of one job, in order. ``force`` reruns the target stage itself even when its inputs are
    unchanged (``dvc repro --force --single-item``): a job about a new model version must examine that version,
    which DVC cannot see as a changed dependency."""
    if force and not target:
        raise CurationError("a forced job needs a target stage; forcing the whole pipeline would retrain everything")
    dvc = dvc_executable()
    commands: list[list[str]] = []
    if pull:
        if (project_dir / ".git").exists():
            commands.append(["git", "pull", "--ff-only"])
        commands.append([dvc, "pull"])
    if force:
        commands.append([dvc, "repro", "--force", "--single-item", target])
    else:
        commands.append([dvc, "repro", target] if target else [dvc, "repro"])
    return commands


def run_target(
    target: str,
    *,
    project_dir: str | Path = ".",
    name: str | None = None,
    pull: bool = False,
    trigger: str = "manual",
    lock_wait_s: float = 0.0,
    tags: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
    force: bool = False,
) -> JobOutcome:
    """Run ``dvc repro target`` in ``project_dir`` as one parent MLflow run tagged ``trigger``.

    Waits up to ``lock_wait_s`` seconds for another job in the project to finish, else returns a ``skipped``
    outcome without running anything. ``force``: see :func:`job_commands`. The combined command output is logged
    as the run artifact ``job/output.log``. A non-zero exit marks the parent run FAILED and raises ``JobFailedError``.
    """
    project = Path(project_dir).resolve()
    if not (project / "dvc.yaml").exists():
        raise CurationError(f"{project / 'dvc.yaml'}: not found; a job runs `dvc repro` in a DVC project")
    job_commands(target, pull=pull, project_dir=project, force=force)  # refuse a bad job before any run exists
    path = lock_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=lock_wait_s)
    try:
        lock.acquire()
    except Timeout:
        log.warning("job %s: %s is locked by a running job; %r skipped", name or target, project, target)
        return JobOutcome(status="skipped", target=target)
    try:
        return _run_locked(target, project=project, name=name or target, pull=pull, trigger=trigger,
                           tags=tags or {}, extra_env=extra_env or {}, force=force)
    finally:
        lock.release()


def _run_locked(target: str, *, project: Path, name: str, pull: bool, trigger: str, tags: dict[str, str],
                extra_env: dict[str, str], force: bool) -> JobOutcome:
    from curation.tracking.jobs import parent_run

    started = time.monotonic()
    with parent_run(name, trigger=trigger, project_dir=project,
                    tags={"curation.target": target, **tags}) as run:
        env = {**os.environ, **run.env, **extra_env, "PYTHONUNBUFFERED": "1"}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        log_file = project / LOG_DIR / run.run_id / "output.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        returncode = 0
        with log_file.open("w") as out:
            for argv in job_commands(target, pull=pull, project_dir=project, force=force):
                out.write(f"$ {' '.join(argv)}\n")
                out.flush()
                log.info("job %s: %s", name, " ".join(argv))
                returncode = subprocess.run(argv, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            check=False).returncode
                if returncode != 0:
                    break
        run.log_metrics({"returncode": returncode})
        run.log_artifact(log_file, "job")
        if returncode != 0:
            last = (log_file.read_text(errors="replace").strip().splitlines() or [""])[-1]
            raise JobFailedError(f"job {name}: `{' '.join(argv)}` exited {returncode} ({last[:200]}); "
                                 f"log {log_file}", run_id=run.run_id)
    duration = round(time.monotonic() - started, 3)
    log.info("job %s: succeeded in %.1f s (run %s)", name, duration, run.run_id)
    return JobOutcome(status="succeeded", target=target, run_id=run.run_id, returncode=0, duration_s=duration,
                      log_path=str(log_file))


def scheduled_job(*, name: str, target: str, project_dir: str, pull: bool = False, cron: str = "") -> str:
    """APScheduler entry point (referenced textually from the job store): one scheduled execution.

    A failure is recorded in its parent MLflow run and re-raised, which APScheduler logs as a job error before
    carrying on with the next fire time, so one failing target never stops the scheduler.
    """
    return run_target(target, project_dir=project_dir, name=name, pull=pull, trigger="schedule",
                      lock_wait_s=SCHEDULED_LOCK_WAIT_S,
                      tags={"curation.schedule.cron": cron} if cron else None).status
