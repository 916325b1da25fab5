"""`curate schedule sync`: the schedule: block of params.yaml is the source of truth for stored schedules."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from curation.cli import cli
from curation.scheduling import add_schedule, list_schedules

DVC_YAML = "stages:\n  build_report:\n    cmd: echo hi\n  train_lm:\n    cmd: echo lm\n"


def test_sync_adds_replaces_and_removes(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    add_schedule(tmp_path, "old", cron="0 3 * * *", target="train_lm")
    add_schedule(tmp_path, "nightly", cron="0 4 * * *", target="train_lm")
    params = tmp_path / "params.yaml"
    params.write_text("train_lm: {x: 1}\nschedule:\n  nightly: {cron: '0 2 * * *', target: build_report, pull: true}\n"
                      "  lm: {cron: '15 * * * *', target: train_lm}\n")
    result = CliRunner().invoke(cli, ["schedule", "sync", "--params", str(params), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    stored = {s.name: s for s in list_schedules(tmp_path)}
    assert sorted(stored) == ["lm", "nightly"]
    assert (stored["nightly"].cron, stored["nightly"].target, stored["nightly"].pull) == ("0 2 * * *", "build_report", True)
    assert "old: removed" in result.output


def test_sync_rejects_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    params = tmp_path / "params.yaml"
    params.write_text("schedule:\n  nightly: {cron: '0 2 * * *', targte: build_report}\n")
    result = CliRunner().invoke(cli, ["schedule", "sync", "--params", str(params), "--project", str(tmp_path)])
    assert result.exit_code != 0
    assert "schedule.nightly: unknown key 'targte'; did you mean 'target'?" in str(result.exception)
    assert list_schedules(tmp_path) == []
