"""The per-example output contract (docs/output-contract.md) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curation.errors import DataContractError
from curation.issue_tables import check_issue_table, dataset_summary, issue_table


def test_rank_decision_and_summary_by_hand() -> None:
    table = issue_table(["a", "b", "c", "d"], [0.2, 0.9, 0.9, -1.0], issue="label", fraction=0.5)
    assert table.columns == ["example_id", "label_score", "is_label_issue", "label_rank"]
    assert table["label_rank"].to_list() == [3, 1, 2, 4]  # tie b/c broken by input order
    assert table["is_label_issue"].to_list() == [False, True, True, False]
    row = dataset_summary(table, issue="label", method="m", average_precision=0.5).row(0, named=True)
    assert row == {"issue": "label", "method": "m", "n_examples": 4, "n_issues": 2, "issue_rate": 0.5,
                   "mean_score": pytest.approx(0.25), "max_score": 0.9, "average_precision": 0.5}


def test_given_decision_extras_and_ceil_fraction() -> None:
    table = issue_table([1, 2, 3], [1.0, 2.0, 3.0], issue="outlier", flagged=[True, False, False],
                        extras={"given": [0, 1, 1]})
    assert table["is_outlier_issue"].to_list() == [True, False, False] and "outlier_given" in table.columns
    assert issue_table([1, 2, 3], [1.0, 2.0, 3.0], issue="x", fraction=0.34)["is_x_issue"].sum() == 2


def test_non_finite_score_names_row_and_example() -> None:
    with pytest.raises(DataContractError, match=r"label scores: row 1 \(example_id 'b'\): score is not finite"):
        issue_table(["a", "b"], [0.1, np.nan], issue="label", fraction=0.1)


@pytest.mark.parametrize(("frame", "match"), [
    (pl.DataFrame({"example_id": [1], "label_score": [1.0], "label_rank": [1]}), "missing column 'is_label_issue'"),
    (pl.DataFrame({"example_id": [1, 1], "label_score": [1.0, 2.0], "is_label_issue": [True, False],
                   "label_rank": [2, 1]}), "not unique"),
    (pl.DataFrame({"example_id": [1, 2], "label_score": [1.0, 2.0], "is_label_issue": [1, 0],
                   "label_rank": [2, 1]}), "must be boolean"),
    (pl.DataFrame({"example_id": [1, 2], "label_score": [1.0, 2.0], "is_label_issue": [True, False],
                   "label_rank": [1, 1]}), "permutation"),
])
def test_check_issue_table_rejects_broken_tables(frame: pl.DataFrame, match: str) -> None:
    with pytest.raises(DataContractError, match=match):
        check_issue_table(frame, "label")
