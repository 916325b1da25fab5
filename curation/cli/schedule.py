"""``curate schedule``: nightly (cron) runs of ``dvc repro <target>``, stored in ``schedules.sqlite``."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import yaml

from curation.errors import CurationError

PROJECT = click.option("--project", "project_dir", default=".", show_default=True,
                       type=click.Path(file_okay=False, exists=True),
                       help="DVC project folder (holds dvc.yaml and schedules.sqlite).")


def check_target(project_dir: str, target: str) -> None:
    """A plain stage name must be a stage of the project's dvc.yaml (paths and ``file:stage`` pass through)."""
    dvc_yaml = Path(project_dir) / "dvc.yaml"
    if not dvc_yaml.exists():
        raise CurationError(f"{dvc_yaml}: not found; schedules run `dvc repro` in a DVC project")
    if ":" in target or "/" in target or (Path(project_dir) / target).exists():
        return
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    if target not in stages:
        from curation._internal.suggest import did_you_mean

        raise CurationError(f"{dvc_yaml}: --target {target!r} is not a stage{did_you_mean(target, stages)}")


@click.group("schedule")
def schedule_group() -> None:
    """Run pipeline targets on a cron schedule (APScheduler; jobs persist in ./schedules.sqlite).

    Each execution runs `dvc repro TARGET` in the project exactly as a person would, under the project's job lock
    (one job at a time, so a target never runs twice at once), as one parent MLflow run tagged trigger=schedule
    (run-now: trigger=manual) with the stage runs nested under it.

    \b
    Example:
      curate schedule add nightly --cron "0 2 * * *" --target build_report
      curate schedule list
      curate schedule run-now nightly
      curate schedule serve          # foreground; see docs/operations.md for systemd and cron
    """
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # store open/close chatter; serve re-enables it


@schedule_group.command("add")
@click.argument("name")
@click.option("--cron", required=True, help='Five-field crontab expression in UTC, e.g. "0 2 * * *".')
@click.option("--target", required=True, help="DVC stage (or dvc.yaml path / file:stage) to reproduce.")
@click.option("--pull", is_flag=True, help="Run `git pull --ff-only` and `dvc pull` before `dvc repro`.")
@click.option("--replace", is_flag=True, help="Overwrite an existing schedule of the same name.")
@PROJECT
def add_cmd(name: str, cron: str, target: str, pull: bool, replace: bool, project_dir: str) -> None:
    """Add a schedule NAME that runs `dvc repro TARGET` at CRON (UTC).

    \b
    Example:
      curate schedule add nightly --cron "0 2 * * *" --target build_report --pull
    """
    from curation.scheduling import add_schedule

    check_target(project_dir, target)
    info = add_schedule(project_dir, name, cron=cron, target=target, pull=pull, replace=replace)
    click.echo(f"{info.name}: `dvc repro {info.target}` at {info.cron!r} UTC; next run {_when(info.next_run_time)}")


@schedule_group.command("sync")
@click.option("--params", "params_file", default="params.yaml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="File whose `schedule:` block is the truth.")
@PROJECT
def sync_cmd(params_file: str, project_dir: str) -> None:
    """Make the stored schedules match the `schedule:` block of params.yaml (add, replace, remove).

    The block is declared by no DVC stage, so editing it never invalidates a cache.

    \b
    Example (params.yaml):
      schedule:
        nightly: {cron: "0 2 * * *", target: build_report, pull: true}
    then:
      curate schedule sync && curate schedule list
    """
    from curation.scheduling import add_schedule, list_schedules, remove_schedule
    from curation.scheduling.params_block import read_schedule_block

    entries = read_schedule_block(params_file)
    for name, entry in entries.items():
        check_target(project_dir, entry.target)
        info = add_schedule(project_dir, name, cron=entry.cron, target=entry.target, pull=entry.pull, replace=True)
        click.echo(f"{info.name}: `dvc repro {info.target}` at {info.cron!r} UTC; next run {_when(info.next_run_time)}")
    for info in list_schedules(project_dir):
        if info.name not in entries:
            remove_schedule(project_dir, info.name)
            click.echo(f"{info.name}: removed (not in {params_file})")


@schedule_group.command("list")
@PROJECT
def list_cmd(project_dir: str) -> None:
    """List schedules with their next fire time.

    \b
    Example:
      curate schedule list
    """
    from curation.scheduling import list_schedules

    infos = list_schedules(project_dir)
    if not infos:
        click.echo("no schedules (add one with `curate schedule add`)")
        return
    click.echo(f"{'name':<20} {'cron':<16} {'target':<24} {'pull':<5} next run")
    for info in infos:
        click.echo(f"{info.name:<20} {info.cron:<16} {info.target:<24} {str(info.pull).lower():<5} "
                   f"{_when(info.next_run_time)}")


@schedule_group.command("remove")
@click.argument("name")
@PROJECT
def remove_cmd(name: str, project_dir: str) -> None:
    """Remove schedule NAME.

    \b
    Example:
      curate schedule remove nightly
    """
    from curation.scheduling import remove_schedule

    remove_schedule(project_dir, name)
    click.echo(f"{name}: removed")


@schedule_group.command("run-now")
@click.argument("name")
@click.option("--wait", "wait_s", default=0.0, show_default=True, type=float,
              help="Seconds to wait for a job already running in the project before giving up.")
@PROJECT
def run_now_cmd(name: str, wait_s: float, project_dir: str) -> None:
    """Run schedule NAME once now, in the foreground (trigger=manual); exit 2 if the job fails.

    \b
    Example:
      curate schedule run-now nightly
    """
    from curation.scheduling import get_schedule, run_target

    info = get_schedule(project_dir, name)
    outcome = run_target(info.target, project_dir=info.project_dir, name=info.name, pull=info.pull,
                         trigger="manual", lock_wait_s=wait_s)
    if outcome.status == "skipped":
        click.echo(f"{name}: another job is running in this project (it holds the lock); nothing run")
        raise SystemExit(3)
    click.echo(f"{name}: succeeded in {outcome.duration_s:.1f} s (MLflow run {outcome.run_id}, log {outcome.log_path})")


@schedule_group.command("serve")
@click.option("--workers", default=2, show_default=True, type=int, help="Jobs that may run at the same time.")
@PROJECT
def serve_cmd(workers: int, project_dir: str) -> None:
    """Run the stored schedules in the foreground until Ctrl-C / SIGTERM.

    Missed fires (the machine was off) collapse into one catch-up run within a 6 h grace time.

    \b
    Example:
      curate schedule serve --project /srv/curation
    """
    from curation.scheduling import serve

    logging.getLogger("apscheduler").setLevel(logging.INFO)
    click.echo(f"scheduler on {Path(project_dir).resolve()}/schedules.sqlite; Ctrl-C stops it")
    serve(project_dir, workers=workers)


def _when(moment: object) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment is not None else "paused"
