"""The budget Selector against hand-computed kept sets: count / fraction / token budgets, quotas (given and
proportional), exact-duplicate removal, eligibility, seeded determinism, Gumbel top-k inclusion probabilities,
the not_selected issue table, the filtered output over shards, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from curation.errors import ConfigError, CurationError, DataContractError
from curation.issue_tables import check_issue_table
from curation.plugins import build_method
from curation.selection import Selector, SelectorConfig, selection_issues, write_filtered


def _frame(n: int = 10, **columns) -> pl.DataFrame:
    base = {"example_id": [f"e{i}" for i in range(n)], "score": [float(i) for i in range(n)],
            "text": [f"doc {i}" for i in range(n)]}
    return pl.DataFrame(base | columns)


def _kept(selection: pl.DataFrame) -> list[str]:
    return sorted(selection.filter("keep")["example_id"].to_list())


def test_count_topk_keeps_the_highest_scores_with_reasons_and_ranks() -> None:
    out = Selector(SelectorConfig(budget="count", value=3, method="topk")).select(_frame())
    assert _kept(out) == ["e7", "e8", "e9"]
    assert out["rank"].to_list() == list(range(10, 0, -1))
    assert out["reason"].to_list() == ["not_selected"] * 7 + ["kept"] * 3
    assert out.columns == ["example_id", "keep", "reason", "score", "rank"]


def test_fraction_is_ceil_of_the_eligible_rows_and_ties_break_by_row_order() -> None:
    frame = _frame(score=[1.0] * 10, eligible=[True] * 7 + [False] * 3)
    out = Selector(SelectorConfig(budget="fraction", value=0.3, method="topk")).select(frame)
    assert _kept(out) == ["e0", "e1", "e2"]  # ceil(0.3 * 7) = 3, equal scores -> first rows
    assert out["reason"].to_list()[7:] == ["ineligible"] * 3
    assert out["rank"].to_list()[7:] == [8, 9, 10]


def test_token_budget_keeps_the_longest_ranked_prefix_that_fits() -> None:
    frame = _frame(5, n_tok=[4, 3, 5, 2, 6])  # ranked by score: e4 (6), e3 (2), e2 (5), e1 (3), e0 (4)
    out = Selector(SelectorConfig(budget="tokens", value=13, method="topk", token_column="n_tok")).select(frame)
    assert _kept(out) == ["e2", "e3", "e4"]  # 6 + 2 + 5 = 13; + 3 would exceed
    words = _frame(4, text=["a b c", "a", "a b", "a b c d"])  # whitespace words 3, 1, 2, 4
    out = Selector(SelectorConfig(budget="tokens", value=6, method="topk")).select(words)
    assert _kept(out) == ["e2", "e3"]


def test_quotas_split_the_budget_by_largest_remainder_and_rank_within_each_group() -> None:
    frame = _frame(10, g=["a"] * 4 + ["b"] * 3 + ["c"] * 3)
    cfg = SelectorConfig(budget="count", value=5, method="topk", group_column="g",
                         quotas={"a": 0.5, "b": 0.3, "c": 0.2})
    out = Selector(cfg).select(frame)  # exact 2.5 / 1.5 / 1.0 -> 2 / 1 / 1, one left -> a (tie with b: name)
    assert _kept(out) == ["e1", "e2", "e3", "e6", "e9"]
    assert out["g"].to_list() == frame["g"].to_list()
    proportional = Selector(SelectorConfig(budget="count", value=5, method="topk", group_column="g")).select(frame)
    # shares 0.4 / 0.3 / 0.3 -> exact 2.0 / 1.5 / 1.5 -> 2 / 1 / 1, one left -> b (tie with c, by name)
    assert _kept(proportional) == ["e2", "e3", "e5", "e6", "e9"]


def test_token_quotas_floor_each_group_budget() -> None:
    frame = _frame(6, g=["a", "a", "a", "b", "b", "b"], n_tok=[1] * 6)
    cfg = SelectorConfig(budget="tokens", value=5, method="topk", group_column="g", token_column="n_tok",
                         quotas={"a": 0.5, "b": 0.5})
    assert _kept(Selector(cfg).select(frame)) == ["e1", "e2", "e4", "e5"]  # floor(2.5) tokens each


def test_exact_duplicates_keep_the_best_scored_copy_and_do_not_count_against_the_budget() -> None:
    frame = _frame(6, text=["x", "y", "x", "z", "y", "x"], score=[5.0, 1.0, 9.0, 0.0, 1.0, 2.0])
    out = Selector(SelectorConfig(budget="count", value=3, method="topk")).select(frame)
    assert out["reason"].to_list() == ["duplicate", "kept", "kept", "kept", "duplicate", "duplicate"]
    assert _kept(out) == ["e1", "e2", "e3"]  # y tie at score 1.0: the earlier row stays
    no_dedup = Selector(SelectorConfig(budget="count", value=3, method="topk", dedup=False)).select(frame)
    assert _kept(no_dedup) == ["e0", "e2", "e5"]


def test_gumbel_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    frame = _frame(50, score=[0.0] * 50)
    picks = [_kept(Selector(SelectorConfig(budget="count", value=10, seed=s)).select(frame)) for s in (0, 0, 1)]
    assert picks[0] == picks[1] and picks[0] != picks[2]


def test_gumbel_top1_inclusion_follows_the_softmax_of_the_scores() -> None:
    weights = np.array([1.0, 2.0, 7.0])
    frame = _frame(3, score=np.log(weights).tolist())
    trials = 1000
    hits = np.zeros(3)
    for seed in range(trials):
        out = Selector(SelectorConfig(budget="count", value=1, seed=seed)).select(frame)
        hits += out["keep"].to_numpy()
    # binomial sd at p = 0.7 over 1000 trials is 0.0145; 0.05 is > 3 sd (max deviation measured over the 20 seed
    # blocks 0-999 ... 19000-19999: 0.033, median 0.016)
    assert np.abs(hits / trials - weights / weights.sum()).max() < 0.05


def test_not_selected_issue_table_follows_the_output_contract() -> None:
    out = Selector(SelectorConfig(budget="count", value=2, method="topk")).select(_frame(4))
    table, summary = selection_issues(out, method="dsir")
    check_issue_table(table, "not_selected")
    assert table["is_not_selected_issue"].to_list() == [True, True, False, False]
    assert table["not_selected_rank"].to_list() == [1, 2, 3, 4]  # lowest selection score = most "not selected"
    assert summary.row(0, named=True)["n_issues"] == 2


def test_write_filtered_over_shards_records_selection_inputs_and_budget(tmp_path) -> None:
    frame = _frame(6)
    frame.head(4).write_parquet(tmp_path / "a.parquet")
    frame.tail(2).write_parquet(tmp_path / "b.parquet")
    (tmp_path / "target.parquet").write_bytes(b"target")
    cfg = SelectorConfig(budget="count", value=3, method="topk")
    out = Selector(cfg).select(frame)
    manifest = write_filtered([tmp_path / "a.parquet", tmp_path / "b.parquet"], out, tmp_path / "out",
                              selector="budget", config=cfg, write_selection=True,
                              inputs={"target": tmp_path / "target.parquet"}, extra={"budget": {"count": 3}})
    kept = pl.read_parquet(tmp_path / "out" / "filtered.parquet")
    assert kept["example_id"].to_list() == ["e3", "e4", "e5"] and kept.columns == frame.columns
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved == manifest and saved["rows_in"] == 6 and saved["dropped_by_reason"] == {"not_selected": 3}
    assert len(saved["source_digest"]) == 2 and saved["budget"] == {"count": 3}
    assert set(saved["inputs"]["target"]) == {"path", "digest"}
    assert pl.read_parquet(saved["selection"]).equals(out)


@pytest.mark.parametrize(("frame", "cfg", "message"), [
    (_frame(0), SelectorConfig(), "the pool is empty"),
    (_frame(3).drop("text"), SelectorConfig(), "missing column 'text'"),
    (_frame(3), SelectorConfig(budget="count", value=4), "budget of 4 rows exceeds the 3 eligible rows"),
    (_frame(3), SelectorConfig(budget="tokens", value=7), "budget of 7 tokens exceeds the 6 tokens"),
    (_frame(3, score=[0.0, float("nan"), 1.0]), SelectorConfig(), "row 1 .*score is null or not finite"),
    (_frame(3, example_id=["a", "b", "a"]), SelectorConfig(), "row 2: duplicate example_id 'a'"),
    (_frame(3, g=["a", "a", "b"]), SelectorConfig(group_column="g", quotas={"a": 0.5, "q": 0.5}),
     "quota group 'q' is not in column 'g'"),
    (_frame(3, g=["a", "a", "b"]), SelectorConfig(budget="count", value=2, group_column="g",
                                                  quotas={"b": 1.0}), "g 'b': budget of 2 rows exceeds the 1"),
])
def test_bad_input_is_a_one_line_data_error(frame, cfg, message) -> None:
    with pytest.raises(DataContractError, match=message) as err:
        Selector(cfg).select(frame)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("options", "message"), [
    ({"value": -0.1}, "value must be a finite number >= 0"),
    ({"value": 1.5}, "fraction budget must lie in"),
    ({"budget": "count", "value": 2.5}, "whole number"),
    ({"budget": "bytes"}, "budget"),
    ({"quotas": {"a": 1.0}}, "quotas need a group_column"),
    ({"group_column": "g", "quotas": {"a": 0.5}}, "sum to 1"),
    ({"top": 3}, "unknown key 'top'"),
])
def test_bad_options_are_one_line_config_errors(options, message) -> None:
    with pytest.raises((ConfigError, CurationError), match=message) as err:
        build_method("curation.selectors", {"name": "budget", "options": options})
    assert "\n" not in str(err.value)

