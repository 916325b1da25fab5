"""Readers name the file (and line) in errors; writers are atomic."""

from pathlib import Path

import polars as pl
import pytest

from curation.errors import DataContractError
from curation.io import atomic_path, read_table, write_json, write_parquet


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame({"example_id": ["a", "b"], "text": ["hello", "wörld"], "label": [0, 1]})


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_round_trip_each_format(tmp_path: Path, frame: pl.DataFrame, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    {".parquet": frame.write_parquet, ".jsonl": frame.write_ndjson, ".csv": frame.write_csv}[suffix](path)
    assert read_table(path).equals(frame)
    assert read_table(path, columns=["text"]).columns == ["text"]


def test_missing_column_is_named(tmp_path: Path, frame: pl.DataFrame) -> None:
    path = tmp_path / "t.csv"
    frame.write_csv(path)
    with pytest.raises(DataContractError, match=r"t.csv: missing column 'nope'"):
        read_table(path, columns=["nope"])


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"example_id": "a", "text": "ok"}\n{"example_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(DataContractError, match=r"t.jsonl: line 2: text is not valid UTF-8 \(byte 0xe9"):
        read_table(path)


def test_corrupt_parquet_and_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(DataContractError, match=r"bad.parquet: cannot read as parquet"):
        read_table(bad)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataContractError, match=r"empty.csv: file is empty"):
        read_table(empty)
    with pytest.raises(DataContractError, match="unsupported table format '.xlsx'"):
        read_table(tmp_path / "t.xlsx")


def test_failed_write_leaves_previous_content(tmp_path: Path, frame: pl.DataFrame) -> None:
    dest = tmp_path / "out.parquet"
    write_parquet(frame, dest)
    before = dest.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash mid-write")
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_atomic_directory_replace(tmp_path: Path) -> None:
    dest = tmp_path / "ckpts"
    with atomic_path(dest, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(ValueError), atomic_path(dest, is_dir=True) as tmp:
        (tmp / "b.txt").write_text("2")
        raise ValueError("training failed")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    with atomic_path(dest, is_dir=True) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in dest.iterdir()) == ["c.txt"]
    write_json({"b": 1, "a": 2}, tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text().startswith('{\n  "a": 2')
