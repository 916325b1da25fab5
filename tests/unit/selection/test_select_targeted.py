"""``curate select-targeted`` end to end on a tiny byte GPT checkpoint: LESS recovers pool rows planted in the style
of the target task, BIDS balances two tasks where LESS's max-over-tasks ranking does not, learned predictors report
their held-out Spearman and cost saved, and every method writes the output contract of ``curate select``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

pytest.importorskip("peft")

from curation.cli import main
from curation.issue_tables import check_issue_table
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig

LM = {"n_layer": 2, "n_head": 2, "d_model": 32, "block_size": 32}
PLANTED = {f"p{i}" for i in range(28, 36)}
# the warm-up of tests/unit/selection/targeted/test_less_gist.py (whose recovery was measured over 20 seeds)
WARMUP = ("warmup.fraction=0.5", "warmup.epochs=3", "warmup.batch_size=8", "warmup.learning_rate=0.005",
          "warmup.lora_r=4", "warmup.lora_alpha=16", "features.proj_dim=0")
OUTPUTS = ("filtered.parquet", "selection.parquet", "manifest.json", "not_selected_issues.parquet",
           "summary.parquet")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pool.parquet (64 rows: 8 arithmetic lines planted at rows 28-35 among prose), targets.parquet (5 math + 5
    prose targets, task column), math.parquet (the math targets only) and lm.safetensors (a random byte GPT)."""
    root = tmp_path_factory.mktemp("targeted")
    rng = np.random.default_rng(0)
    words = ["the", "a", "river", "stone", "house", "light", "green", "quiet", "morning", "road", "field", "wind"]
    prose = [" ".join(rng.choice(words, 8)) for _ in range(56)]
    planted = [f"{a}+{b}={a + b};{b}+{a}={a + b};" for a, b in rng.integers(10, 99, (8, 2))]
    pool = pl.DataFrame({"example_id": [f"p{i}" for i in range(64)], "text": prose[:28] + planted + prose[28:],
                         "source": ["prose"] * 28 + ["math"] * 8 + ["prose"] * 28})
    pool.write_parquet(root / "pool.parquet")
    targets = pl.DataFrame({"text": [f"{a}+{b}={a + b};" for a, b in rng.integers(10, 99, (5, 2))]
                            + [" ".join(rng.choice(words, 8)) for _ in range(5)],
                            "task": ["math"] * 5 + ["prose"] * 5})
    targets.write_parquet(root / "targets.parquet")
    targets.filter(pl.col("task") == "math").write_parquet(root / "math.parquet")
    torch.manual_seed(0)
    save_checkpoint(root / "lm.safetensors", ByteGPTAdapter(ByteGPTConfig(**LM)).build_model().state_dict(),
                    CheckpointInfo(adapter="byte_gpt", model_config=LM, step=1, learning_rate=0.01))
    return root


def _curate(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["curate", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _select(ws: Path, out: Path, *args: str) -> list[str]:
    return ["select-targeted", "--checkpoints", str(ws / "lm.safetensors"), "--pool", str(ws / "pool.parquet"),
            "--out", str(out), *args]


def _check_contract(out: Path, pool: pl.DataFrame, kept: int, method: str) -> dict:
    assert all((out / name).is_file() for name in OUTPUTS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_in"] == pool.height and manifest["kept"] == kept
    assert manifest["scorer"]["name"] == method and manifest["source_digest"] and manifest["selection_digest"]
    assert manifest["selector"] == "budget" and manifest["config_hash"]
    selection = pl.read_parquet(out / "selection.parquet")
    assert selection.columns[:5] == ["example_id", "keep", "reason", "score", "rank"]
    filtered = pl.read_parquet(out / "filtered.parquet")
    assert filtered.columns == pool.columns  # pool schema and order, kept rows only
    assert filtered["example_id"].to_list() == pool.filter(selection["keep"])["example_id"].to_list()
    issues = pl.read_parquet(out / "not_selected_issues.parquet")
    check_issue_table(issues, "not_selected")
    assert int(issues["is_not_selected_issue"].sum()) == pool.height - kept
    assert pl.read_parquet(out / "summary.parquet")["method"].to_list() == [method]
    return manifest


def test_less_recovers_the_planted_rows(workspace: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "less"
    options = [a for o in WARMUP for a in ("--option", o)]
    code, text = _curate(_select(workspace, out, "--method", "less", "--targets", str(workspace / "math.parquet"),
                                 "--budget", "count", "--value", "8", *options), monkeypatch, capsys)
    assert code == 0, text
    manifest = _check_contract(out, pl.read_parquet(workspace / "pool.parquet"), 8, "less")
    assert manifest["inputs"]["targets"]["digest"] and manifest["budget"]["method"] == "topk"
    assert manifest["scorer"]["options"]["warmup"]["epochs"] == 3
    kept = set(pl.read_parquet(out / "filtered.parquet")["example_id"].to_list())
    # precision of the top 8 against the 8 planted rows: 8/8 here; the library test with these settings measured
    # 6-8 of 8 over seeds 0-19 (random pick: 1)
    assert len(kept & PLANTED) >= 5


def test_bids_balances_the_two_tasks(workspace: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """With math and prose targets, LESS's max over tasks is won by prose rows; BIDS gives each task its turn."""
    out = tmp_path / "bids"
    options = [a for o in WARMUP for a in ("--feature-option", o)]
    pl.read_parquet(workspace / "targets.parquet").rename({"task": "domain"}).write_parquet(tmp_path / "t.parquet")
    code, text = _curate(_select(workspace, out, "--method", "bids", "--targets", str(tmp_path / "t.parquet"),
                                 "--task-column", "domain", "--budget", "count", "--value", "8", *options),
                         monkeypatch, capsys)
    assert code == 0, text
    manifest = _check_contract(out, pl.read_parquet(workspace / "pool.parquet"), 8, "bids")
    assert manifest["features_from"]["name"] == "less"
    assert manifest["targets"] == {"task_column": "domain", "per_task": 0, "rows": 10, "tasks": ["math", "prose"]}
    assert manifest["features_from"]["options"]["task_column"] == "domain"
    selection = pl.read_parquet(out / "selection.parquet").filter("keep").sort("rank")
    kept = selection["example_id"].to_list()
    assert selection["rank"].to_list() == list(range(1, 9))
    # measured over seeds 0-19 of this recipe (data, init and LoRA seeds) with the library calls: BIDS keeps 1-2
    # planted and 6-7 prose rows (2 and 6 at this seed); LESS's top 8 by max over tasks keeps 0 planted rows on
    # all 20 seeds, and 6-8 of 8 when the targets are the math task alone
    assert len(set(kept) & PLANTED) >= 1 and len(set(kept) - PLANTED) >= 4


def test_mates_reports_held_out_spearman_and_cost(workspace: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "mates"
    code, text = _curate(_select(workspace, out, "--method", "mates", "--targets", str(workspace / "math.parquet"),
                                 "--option", "sample_fraction=0.25", "--option", "epochs=50", "--holdout", "12",
                                 "--value", "0.25"), monkeypatch, capsys)
    assert code == 0, text
    manifest = _check_contract(out, pl.read_parquet(workspace / "pool.parquet"), 16, "mates")
    figures = manifest["figures"]
    assert -1 <= figures["heldout_spearman"] <= 1 and figures["oracle_rows"] == 16
    # cost saved = 1 - (this round: embeddings + 16 probes + fit) / (probing all 64 rows); on a model this small
    # the fixed costs dominate and it is negative, on the demo's LM it is about 0.9 (refresh_predictor metrics)
    assert figures["all_oracle_s"] == pytest.approx(64 * figures["oracle_s_per_example"])
    assert figures["cost_saved"] == pytest.approx(1 - figures["round_s"] / figures["all_oracle_s"])
    assert "heldout_spearman" in text


def test_ideal_needs_no_model(workspace: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "ideal"
    code, text = _curate(["select-targeted", "--method", "ideal", "--pool", str(workspace / "pool.parquet"),
                          "--budget", "count", "--value", "6", "--out", str(out)], monkeypatch, capsys)
    assert code == 0, text
    _check_contract(out, pl.read_parquet(workspace / "pool.parquet"), 6, "ideal")
    selection = pl.read_parquet(out / "selection.parquet")
    assert sorted(selection.filter("keep")["rank"].to_list()) == list(range(1, 7))


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [
    ("gist", ("--option", "rank=3", *(a for o in WARMUP for a in ("--option", o)))),
    ("nn_cift", ("--option", "sample_fraction=0.5", "--option", "epochs=50", "--holdout", "8")),
    ("tarot", ("--value", "0", *(a for o in WARMUP for a in ("--feature-option", o)))),
    ("dealrec", ("--option", "proj_dim=32")),
])
def test_other_methods_write_the_contract(method: str, extra: tuple[str, ...], workspace: Path, tmp_path: Path,
                                          monkeypatch, capsys) -> None:
    out = tmp_path / method
    targets = () if method == "dealrec" else ("--targets", str(workspace / "math.parquet"))
    if method == "tarot":
        targets = ("--targets", str(workspace / "targets.parquet"))
    args = ("--budget", "count", "--value", "8") if method != "tarot" else ()
    code, text = _curate(_select(workspace, out, "--method", method, *targets, *args, *extra), monkeypatch, capsys)
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    _check_contract(out, pl.read_parquet(workspace / "pool.parquet"), manifest["kept"], method)
    if method == "gist":  # the GIST library test's recovery (>= 5 of 8 over 20 seeds) at the CLI
        kept = set(pl.read_parquet(out / "filtered.parquet")["example_id"].to_list())
        assert len(kept & PLANTED) >= 5


def test_curate_select_points_targeted_methods_to_the_new_command(workspace: Path, tmp_path: Path, monkeypatch,
                                                                  capsys) -> None:
    code, text = _curate(["select", "--pool", str(workspace / "pool.parquet"), "--target",
                          str(workspace / "targets.parquet"), "--method", "less", "--out", str(tmp_path / "o")],
                         monkeypatch, capsys)
    assert code == 2 and "curate select-targeted --method less" in text
    assert not (tmp_path / "o").exists()


def test_the_command_lists_every_targeted_method() -> None:
    from curation.cli.select_targeted import FEATURE_SCORERS, METHODS
    from curation.selection import run_targeted

    assert METHODS == tuple(run_targeted.METHODS) and FEATURE_SCORERS == run_targeted.FEATURE_SCORERS


def test_refresh_report_says_when_a_round_cost_more_than_the_oracle() -> None:
    from curation.config.stages import RefreshPredictorConfig
    from curation.stages.refresh_predictor import _subtitle

    cfg = RefreshPredictorConfig()
    dearer = _subtitle(cfg, {"heldout_spearman": 0.57, "cost_saved": -0.14, "round_s": 90.0, "all_oracle_s": 79.0})
    assert "cost more than the oracle on every row would (90 s against 79 s)" in dearer
    assert "cost more" not in _subtitle(cfg, {"heldout_spearman": 0.66, "cost_saved": 0.75, "round_s": 63.0,
                                               "all_oracle_s": 256.0})
