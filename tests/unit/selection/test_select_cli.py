"""``curate select`` and the ``select_data`` stage on real text with a planted target domain: the kept set is the
target domain, quotas are met exactly with each group's best-scored rows, outputs follow the output contract and
the manifest records digests and budget; bad input is one line on stderr with exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
from selection_text_data import chunked_pool

from curation.cli import main
from curation.issue_tables import check_issue_table


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    pool, target = chunked_pool(rows_per_domain=30)
    shards = tmp_path / "pool"
    shards.mkdir()
    pool.head(70).write_parquet(shards / "part-0.parquet")
    pool.slice(70).write_parquet(shards / "part-1.parquet")
    news = pool.filter(pl.col("domain") == "news").head(10).select("text")
    pl.concat([target.with_columns(domain=pl.lit("legal")), news.with_columns(domain=pl.lit("news"))]).write_parquet(
        tmp_path / "target.parquet")
    return shards, tmp_path / "target.parquet"


def _curate(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["curate", "select", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_select_keeps_the_planted_domain_and_writes_the_contract(tables, tmp_path, monkeypatch, capsys) -> None:
    pool, target = tables
    out = tmp_path / "out"
    code, text = _curate(["--pool", str(pool), "--target", str(target), "--target-filter", "domain=legal",
                          "--budget", "count", "--value", "15", "--topk", "--out", str(out)], monkeypatch, capsys)
    assert code == 0, text
    kept = pl.read_parquet(out / "filtered.parquet")
    # top-15 of 120 chunks (30 legal) towards 20 held-out legal chunks: all legal at every seed (top-k)
    assert kept.height == 15 and kept["domain"].eq("legal").all()
    assert kept.columns == ["example_id", "domain", "text"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_in"] == 120 and manifest["kept"] == 15 and len(manifest["source_digest"]) == 2
    assert manifest["budget"] == {"kind": "count", "value": 15.0, "method": "topk", "seed": 0}
    assert manifest["scorer"]["name"] == "dsir" and manifest["inputs"]["target"]["digest"]
    assert manifest["kl_reduction"] > 0
    issues = pl.read_parquet(out / "not_selected_issues.parquet")
    check_issue_table(issues, "not_selected")
    assert int(issues["is_not_selected_issue"].sum()) == 105
    assert pl.read_parquet(out / "summary.parquet")["n_issues"][0] == 105
    assert "kept 15, dropped 105" in text


def test_quotas_are_met_with_each_groups_best_rows(tables, tmp_path, monkeypatch, capsys) -> None:
    pool, target = tables
    out = tmp_path / "out"
    code, text = _curate(["--pool", str(pool), "--target", str(target), "--budget", "count", "--value", "10",
                          "--topk", "--group-column", "domain", "--quota", "legal=0.6", "--quota", "news=0.4",
                          "--out", str(out)], monkeypatch, capsys)
    assert code == 0, text
    selection = pl.read_parquet(out / "selection.parquet")
    assert selection.filter("keep").group_by("domain").len().sort("domain").rows() == [("legal", 6), ("news", 4)]
    for domain, k in (("legal", 6), ("news", 4)):
        group = selection.filter(pl.col("domain") == domain)
        assert sorted(group.filter("keep")["example_id"]) == sorted(group.sort("score", descending=True)
                                                                    .head(k)["example_id"])


def test_exact_duplicates_across_shards_are_dropped(tables, tmp_path, monkeypatch, capsys) -> None:
    pool, target = tables
    first = pl.read_parquet(pool / "part-0.parquet")
    copy = first.filter(pl.col("domain") == "legal").head(1).with_columns(example_id=pl.lit("copy-of-legal"))
    pl.concat([pl.read_parquet(pool / "part-1.parquet"), copy]).write_parquet(pool / "part-1.parquet")
    out = tmp_path / "out"
    code, text = _curate(["--pool", str(pool), "--target", str(target), "--budget", "count", "--value", "5",
                          "--topk", "--out", str(out)], monkeypatch, capsys)
    assert code == 0, text
    selection = pl.read_parquet(out / "selection.parquet")
    original = copy["text"][0]
    rows = selection.join(pl.concat([first, pl.read_parquet(pool / "part-1.parquet")]), on="example_id").filter(
        pl.col("text") == original)
    # same text, same score: the earlier row stays eligible, the copy in the second file is the duplicate
    assert rows.sort("example_id")["reason"].to_list() in (["duplicate", "kept"], ["duplicate", "not_selected"])
    assert rows.filter(pl.col("example_id") == "copy-of-legal")["reason"][0] == "duplicate"
    assert json.loads((out / "manifest.json").read_text())["dropped_by_reason"]["duplicate"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--value", "-0.1"], "value must be a finite number >= 0"),
    (["--budget", "count", "--value", "500"], "budget of 500 rows exceeds the 120 eligible rows"),
    (["--option", "nope=1"], "unknown key 'nope'"),
    (["--method", "dsirr"], "unknown method 'dsirr'"),
    (["--target-filter", "domain=poetry"], "the target is empty after filter"),
    (["--text-column", "body"], "missing column 'body'"),
    (["--quota", "legal=1", "--group-column", "domain", "--budget", "count", "--value", "40"],
     "domain 'legal': budget of 40 rows exceeds the 30 eligible rows"),
])
def test_bad_input_is_one_line_and_exit_2(tables, tmp_path, monkeypatch, capsys, args, message) -> None:
    pool, target = tables
    code, text = _curate(["--pool", str(pool), "--target", str(target), "--out", str(tmp_path / "o"), *args],
                         monkeypatch, capsys)
    assert code == 2, text
    assert message in text and len(text.strip().splitlines()) == 1, text


@pytest.mark.parametrize(("frame", "message"), [
    (pl.DataFrame({"example_id": ["a"], "body": ["x"]}), "missing column 'text'"),
    (pl.DataFrame({"example_id": [], "text": []}, schema={"example_id": pl.Utf8, "text": pl.Utf8}),
     "the pool is empty"),
])
def test_bad_pool_table_is_one_line_and_exit_2(tables, tmp_path, monkeypatch, capsys, frame, message) -> None:
    _, target = tables
    frame.write_parquet(tmp_path / "bad.parquet")
    code, text = _curate(["--pool", str(tmp_path / "bad.parquet"), "--target", str(target), "--out",
                          str(tmp_path / "o")], monkeypatch, capsys)
    assert code == 2 and message in text and len(text.strip().splitlines()) == 1, text


def test_stage_logs_datasets_and_report(tables, tmp_path, mlflow_store, monkeypatch) -> None:
    import mlflow

    from curation.config.stages import SelectDataConfig
    from curation.selection.selector import SelectorConfig
    from curation.stages.select_data import main as stage_main
    from curation.tracking.recorder import configure_tracking

    pool, target = tables
    monkeypatch.chdir(tmp_path)
    cfg = SelectDataConfig(pool=str(pool), target=str(target), target_filter={"domain": "legal"},
                           selector=SelectorConfig(budget="fraction", value=0.125, method="gumbel"),
                           out_dir="selected", report_dir="report")
    stage_main(cfg)
    assert pl.read_parquet("selected/filtered.parquet")["domain"].eq("legal").all()  # 15 of 120, legal target
    assert Path("report/report.html").exists()
    metrics = json.loads(Path("metrics/select_data.json").read_text())
    assert metrics["kept"] == 15 and metrics["kl_reduction"] > 0
    configure_tracking()
    run = mlflow.search_runs(experiment_names=["test"], output_format="list")[0]
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["input", "output", "target"]
    pool_input = next(i.dataset for i in run.inputs.dataset_inputs if i.dataset.name == "pool")
    assert '"text"' in pool_input.schema and len(pool_input.digest) == 16  # from the Parquet footers, no rows read
