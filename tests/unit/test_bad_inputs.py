"""The table of bad inputs: each gives a one-line error naming the file/column/row, exit status 2, and leaves
the previous good output of the stage untouched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml

from curation.config.stages import ValidateDataConfig
from curation.stages import validate_data
from curation.stages._stage import run_stage

GOOD = pl.DataFrame({"example_id": ["a", "b", "c"], "features": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], "label": [0, 1, 2]})


def _write(frame: pl.DataFrame) -> Callable[[Path], None]:
    return lambda p: frame.write_parquet(p)


BAD_TABLES = {
    "missing_column": (_write(GOOD.drop("label")), r"t.parquet: missing required column 'label'"),
    "duplicate_ids": (
        _write(GOOD.with_columns(pl.Series("example_id", ["a", "b", "a"]))),
        r"t.parquet: column 'example_id', row 0 \(example_id='a'\): duplicate value",
    ),
    "nulls": (
        _write(GOOD.with_columns(pl.Series("label", [0, None, 2]))),
        r"t.parquet: column 'label', row 1 \(example_id='b'\): null value",
    ),
    "wrong_dtype": (
        _write(GOOD.with_columns(pl.col("label").cast(pl.String))),
        r"t.parquet: column 'label' has dtype String, expected integer",
    ),
    "label_out_of_range": (
        _write(GOOD.with_columns(pl.Series("label", [0, 1, 12]))),
        r"t.parquet: column 'label', row 2 \(example_id='c'\): value outside \[0, 9\] 12",
    ),
    "empty_file": (lambda p: p.write_bytes(b""), r"t.parquet: file is empty"),
    "empty_table": (_write(GOOD.head(0)), r"t.parquet: table has no rows"),
    "corrupt_parquet": (lambda p: p.write_bytes(b"PAR1\x00\x01garbage"), r"t.parquet: cannot read as parquet"),
}


def _project(root: Path, table: str, params_extra: dict | None = None) -> Path:
    block = {"report": "out/validation.json", "tables": [{"path": table, "contract": "features", "n_classes": 10}]}
    block.update(params_extra or {})
    (root / "params.yaml").write_text(yaml.safe_dump({"validate_data": block}))
    return root / "out" / "validation.json"


@pytest.fixture
def project(tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    report = _project(tmp_path, "t.parquet")
    GOOD.write_parquet(tmp_path / "t.parquet")
    run_stage("validate_data", ValidateDataConfig, validate_data.main)
    assert report.exists()
    return tmp_path


def _run_expecting_error(capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_stage("validate_data", ValidateDataConfig, validate_data.main)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_table(case: str, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, pattern = BAD_TABLES[case]
    report = project / "out" / "validation.json"
    good_report = report.read_bytes()
    good_metrics = (project / "metrics" / "validate_data.json").read_bytes()
    make(project / "t.parquet")
    err = _run_expecting_error(capsys)
    assert err.startswith("error: ")
    import re

    assert re.search(pattern, err), err
    assert report.read_bytes() == good_report
    assert (project / "metrics" / "validate_data.json").read_bytes() == good_metrics


def test_non_utf8_csv(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "t.csv").write_bytes(b"example_id,text\na,ok\nb,caf\xe9\n")
    _project(project, "t.csv")
    err = _run_expecting_error(capsys)
    assert "t.csv: line 3: text is not valid UTF-8" in err


def test_unknown_params_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _project(project, "t.parquet", {"reprot": "x.json"})
    err = _run_expecting_error(capsys)
    assert err == "error: params.yaml:validate_data: unknown key 'reprot'; did you mean 'report'? (valid: report, tables)"


def test_failed_stage_run_is_marked_failed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    GOOD.with_columns(pl.Series("label", [0, None, 2])).write_parquet(project / "t.parquet")
    _run_expecting_error(capsys)
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["test"], order_by=["attributes.start_time DESC"], output_format="list")
    assert runs[0].info.status == "FAILED"
    assert "null value" in runs[0].data.tags["curation.error"]
    assert runs[1].info.status == "FINISHED"


def test_real_process_exit_status(project: Path) -> None:
    """The same error through a real `python -m curation.stages.validate_data` process."""
    (project / "t.parquet").write_bytes(b"")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "curation.stages.validate_data"], cwd=project, capture_output=True,
                          text=True, env={**__import__("os").environ, "PYTHONPATH": str(repo)}, timeout=300, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: t.parquet: file is empty"
