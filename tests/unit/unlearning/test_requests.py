"""Forget requests: validation errors name the file and row; valid requests split train into forget/retain."""

from pathlib import Path

import polars as pl
import pytest

from curation.errors import CurationError
from curation.unlearning.requests import read_request, sample_request, split_forget_retain

TRAIN = pl.DataFrame({"example_id": ["a", "b", "c", "d"], "text": ["w", "x", "y", "z"]})


def _write(tmp_path: Path, frame: pl.DataFrame, name: str = "req.parquet") -> Path:
    path = tmp_path / name
    frame.write_parquet(path)
    return path


def test_valid_request_splits_in_training_order(tmp_path: Path) -> None:
    req = read_request(_write(tmp_path, pl.DataFrame({"example_id": ["c", "a"]})), TRAIN)
    forget, retain = split_forget_retain(TRAIN, req)
    assert forget["example_id"].to_list() == ["a", "c"] and retain["example_id"].to_list() == ["b", "d"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"example_id": ["a", "zz"]}), "row 2: example_id 'zz' is not in the training table"),
        (pl.DataFrame({"example_id": ["a", "b", "a"]}), "row 3: duplicate example_id 'a'"),
        (pl.DataFrame({"example_id": pl.Series([], dtype=pl.String)}), "forget request is empty"),
        (pl.DataFrame({"example_id": ["a", None]}), "row 2: example_id is null"),
        (pl.DataFrame({"id": ["a"]}), "missing column 'example_id'"),
        (pl.DataFrame({"example_id": [1, 2]}), "has dtype Int64, the training table uses String"),
    ],
)
def test_bad_requests_give_one_line_errors_naming_file_and_row(tmp_path: Path, frame, message) -> None:
    path = _write(tmp_path, frame)
    with pytest.raises(CurationError) as info:
        read_request(path, TRAIN)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_csv_request_and_sampling(tmp_path: Path) -> None:
    path = tmp_path / "req.csv"
    path.write_text("example_id\nb\n")
    assert read_request(path, TRAIN)["example_id"].to_list() == ["b"]
    sample = sample_request(TRAIN, 2, seed=3)
    assert sample.height == 2 and sample["example_id"].is_unique().all()
    assert sample.equals(sample_request(TRAIN, 2, seed=3))
    with pytest.raises(CurationError, match="size must be in 1..3"):
        sample_request(TRAIN, 4, seed=0)
