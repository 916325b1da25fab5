"""Schedules persist in schedules.sqlite; missed fires coalesce into one catch-up run; CLI errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from click.testing import CliRunner

from curation.cli import cli
from curation.errors import CurationError
from curation.scheduling import add_schedule, list_schedules, make_scheduler, remove_schedule

DVC_YAML = "stages:\n  build_report:\n    cmd: echo hi\n  train_lm:\n    cmd: echo lm\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    return tmp_path


def next_two_am(now: datetime) -> datetime:
    """Independent computation of the next 02:00 UTC strictly after ``now``."""
    candidate = now.replace(hour=2, minute=0, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


def test_job_listed_with_next_fire_time_after_restart(project: Path) -> None:
    before = datetime.now(UTC)
    add_schedule(project, "nightly", cron="0 2 * * *", target="build_report")
    add_schedule(project, "hourly-lm", cron="15 * * * *", target="train_lm", pull=True)
    # a new process (a restarted scheduler host) sees both jobs and their next fire times
    curate = str(Path(sys.executable).with_name("curate"))
    out = subprocess.run([curate, "schedule", "list", "--project", str(project)],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert set(lines) == {"nightly", "hourly-lm"}
    expected = next_two_am(before)
    assert expected.strftime("%Y-%m-%d %H:%M:%S") in lines["nightly"]
    assert "build_report" in lines["nightly"] and "true" in lines["hourly-lm"]
    infos = {i.name: i for i in list_schedules(project)}
    assert infos["nightly"].next_run_time == expected
    nxt = infos["hourly-lm"].next_run_time
    assert nxt.minute == 15 and before < nxt <= before + timedelta(hours=1)
    remove_schedule(project, "hourly-lm")
    assert [i.name for i in list_schedules(project)] == ["nightly"]


def _downtime_catchups(project: Path, out: Path, job_defaults: dict | None) -> int:
    """Store a 1 s interval job, stay down ~3.5 s, restart; count executions of fires due before the restart."""
    first = make_scheduler(project, job_defaults=job_defaults)
    first.start(paused=True)
    first.add_job("sched_probe:record", "interval", seconds=1, id="tick", kwargs={"path": str(out)})
    first.shutdown(wait=False)
    time.sleep(3.6)  # the scheduler is down while three or four fires come due
    restart = datetime.now(UTC)
    second = make_scheduler(project, job_defaults=job_defaults)
    executed: list = []
    second.add_listener(executed.append, EVENT_JOB_EXECUTED)
    second.start()
    deadline = time.monotonic() + 15
    while not executed and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    second.shutdown(wait=True)
    assert out.exists(), "the job never ran after the restart"
    return sum(1 for e in executed if e.scheduled_run_time < restart)


def test_exactly_one_catch_up_run_after_downtime(project: Path) -> None:
    assert _downtime_catchups(project, project / "ticks.txt", None) == 1


def test_without_coalescing_the_same_downtime_replays_every_missed_fire(tmp_path: Path) -> None:
    """Control: the catch-up count above is 1 because of coalesce=True, not because fires were lost."""
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    n = _downtime_catchups(tmp_path, tmp_path / "ticks.txt", {"coalesce": False, "max_instances": 10})
    assert n >= 3


def test_job_defaults_are_coalesce_single_instance_with_grace(project: Path) -> None:
    add_schedule(project, "nightly", cron="0 2 * * *", target="build_report")
    scheduler = make_scheduler(project)
    scheduler.start(paused=True)
    job = scheduler.get_job("nightly")
    scheduler.shutdown(wait=False)
    assert (job.coalesce, job.max_instances) == (True, 1)
    assert job.misfire_grace_time >= 3600
    assert job.func_ref == "curation.scheduling.jobs:scheduled_job"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "x", "--cron", "0 25 * * *", "--target", "build_report"], "--cron '0 25 * * *'"),
        (["add", "x", "--cron", "0 2 * *", "--target", "build_report"], "--cron '0 2 * *'"),
        (["add", "x", "--cron", "0 2 * * *", "--target", "build_reprot"], "did you mean 'build_report'"),
        (["add", "bad name", "--cron", "0 2 * * *", "--target", "build_report"], "schedule name 'bad name'"),
        (["remove", "nightli"], "did you mean 'nightly'"),
        (["add", "nightly", "--cron", "0 3 * * *", "--target", "build_report"], "already exists"),
    ],
)
def test_cli_errors_are_one_line(project: Path, args: list[str], message: str) -> None:
    add_schedule(project, "nightly", cron="0 2 * * *", target="build_report")
    result = CliRunner().invoke(cli, ["schedule", *args, "--project", str(project)])
    assert isinstance(result.exception, CurationError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_cli_add_list_remove(project: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["schedule", "add", "nightly", "--cron", "0 2 * * *", "--target", "build_report",
                                "--project", str(project)])
    assert added.exit_code == 0, added.output
    assert "next run" in added.output
    listed = runner.invoke(cli, ["schedule", "list", "--project", str(project)])
    assert "nightly" in listed.output and "0 2 * * *" in listed.output
    assert runner.invoke(cli, ["schedule", "remove", "nightly", "--project", str(project)]).exit_code == 0
    assert "no schedules" in runner.invoke(cli, ["schedule", "list", "--project", str(project)]).output
    with pytest.raises(CurationError):
        remove_schedule(project, "nightly")
