"""Estimator trust on hand-computable cases: cosines, Spearman and top-k overlap, domain purity against the best
text baseline, and the plain-language verdicts (the BM25 baseline is tested in tests/unit/text/test_bm25.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from curation.attribution.trust import (
    agreement_table,
    domain_hits,
    domain_purity_table,
    gradient_cosine,
    per_query_agreement,
    tfidf_cosine,
    trust_verdicts,
)


def test_cosines() -> None:
    np.testing.assert_allclose(gradient_cosine(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),
                                               np.array([[0.0, 2.0]])), [[0.0], [1 / math.sqrt(2)], [0.0]])
    sim = tfidf_cosine(["influence functions", "qqqq"], ["influence functions", "xyzw"])
    np.testing.assert_allclose(sim[0, 0], 1.0)
    np.testing.assert_allclose(sim[1, 0], 0.0)
    assert sim[0, 1] == 0.0


def test_spearman_and_top_k_overlap_by_hand() -> None:
    a = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    b = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 3.0], [3.0, 4.0]])
    rho, overlap = per_query_agreement(a, b, k=2)
    assert rho[0] == pytest.approx(1 - 6 * 2 / (4 * 15))  # one swapped pair: sum d^2 = 2 -> 0.8
    assert math.isnan(rho[1])  # a constant column has no ranking
    assert overlap[0] == 1.0  # top-2 {3, 2} vs {2, 3}
    _, top1 = per_query_agreement(a, b, k=1)
    assert top1[0] == 0.0  # row 3 vs row 2
    np.testing.assert_allclose(per_query_agreement(a[:, :1], -a[:, :1], k=4)[0], [-1.0])


def test_agreement_table_pairs_methods_and_baselines() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    table = agreement_table({"tracin": x, "trak": x.copy(), "retrac": -x},
                            {"bm25": x, "tfidf": rng.normal(size=(10, 3))}, k=2)
    assert table.height == 3 + 3 * 2  # C(3, 2) method pairs, 3 methods x 2 baselines
    row = table.filter((pl.col("method") == "tracin") & (pl.col("reference") == "trak")).row(0, named=True)
    assert (row["spearman"], row["top_k_overlap"], row["chance_overlap"]) == (pytest.approx(1.0), 1.0, 0.2)
    anti = table.filter((pl.col("method") == "tracin") & (pl.col("reference") == "retrac")).row(0, named=True)
    assert anti["spearman"] == pytest.approx(-1.0) and anti["top_k_overlap"] == 0.0
    assert set(table.filter(pl.col("reference_kind") == "baseline")["reference"]) == {"bm25", "tfidf"}


def planted() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Train rows 0-3 domain x, 4-7 domain y; queries 0-3 domain x, 4-7 domain y. ``domain_aware`` puts the
    query's own domain on top for every query; ``lexical`` does so only for queries 0 and 4 (half of its top-4
    is the query's domain there, and none of it elsewhere)."""
    train_domains = ["x"] * 4 + ["y"] * 4
    query_domains = ["x"] * 4 + ["y"] * 4
    aware = np.array([[1.0 if t == q else 0.0 for q in query_domains] for t in train_domains])
    aware += np.arange(8)[:, None] * 1e-3  # break ties deterministically
    lexical = np.zeros((8, 8))
    for j, q in enumerate(query_domains):
        same = [i for i, t in enumerate(train_domains) if t == q]
        other = [i for i, t in enumerate(train_domains) if t != q]
        top = same[:2] + other[:2] if j in (0, 4) else other
        lexical[top, j] = [4.0, 3.0, 2.0, 1.0]
    return aware, lexical, train_domains, query_domains


def test_domain_purity_and_the_paired_comparison_with_text() -> None:
    aware, lexical, train_domains, query_domains = planted()
    np.testing.assert_allclose(domain_hits(aware, train_domains, query_domains, 4), 1.0)
    np.testing.assert_allclose(domain_hits(lexical, train_domains, query_domains, 4),
                               [0.5, 0, 0, 0, 0.5, 0, 0, 0])
    table = domain_purity_table({"tracin": aware, "copycat": lexical, "bm25": lexical, "tfidf": lexical * 0.5},
                                train_domains, query_domains, 4, influence=["tracin", "copycat"])
    tracin = table.filter(pl.col("ranking") == "tracin").row(0, named=True)
    # paired differences: 0.5, 1, 1, 1, 0.5, 1, 1, 1 -> mean 0.875, sd 0.2315, se 0.0818
    assert tracin["domain_purity"] == 1.0 and tracin["vs_best_text"] == pytest.approx(0.875)
    assert tracin["vs_best_text_se"] == pytest.approx(np.std([0.5, 1, 1, 1] * 2, ddof=1) / math.sqrt(8))
    assert tracin["beats_text"] is True
    copycat = table.filter(pl.col("ranking") == "copycat").row(0, named=True)
    assert copycat["vs_best_text"] == 0.0 and copycat["beats_text"] is False
    bm25 = table.filter(pl.col("ranking") == "bm25").row(0, named=True)
    assert bm25["kind"] == "baseline" and bm25["domain_purity"] == pytest.approx(0.125) and bm25["beats_text"] is None

    assert tracin["best_text"] == "bm25"  # purity 0.125 vs tfidf's 0 (lexical * 0.5 ranks the same; ties)
    lines = trust_verdicts(agreement_table({"tracin": aware, "copycat": lexical}, {"bm25": lexical}, 4), table)
    assert lines[0].startswith("tracin: retrieves same-domain passages better than text similarity")
    assert lines[1].startswith("copycat: no better than text similarity: top-k domain purity +0.00")
    assert "share only" in lines[2]

    worse = domain_purity_table({"tracin": lexical, "bm25": aware}, train_domains, query_domains, 4,
                                influence=["tracin"])
    line = trust_verdicts(agreement_table({"tracin": lexical}, {"bm25": aware}, 4), worse)[0]
    assert line.startswith("tracin: no better than text similarity; worse: bm25 retrieves more same-domain")


def test_without_domains_the_verdict_comes_from_overlap_with_text() -> None:
    rng = np.random.default_rng(1)
    text = rng.normal(size=(50, 6))
    own = rng.normal(size=(50, 6))
    lines = trust_verdicts(agreement_table({"tracin": text + 1e-6 * own, "trak": own}, {"bm25": text}, 5))
    assert lines[0].startswith("tracin: its top-k lists are mostly what bm25 retrieves (overlap 1.00)")
    assert lines[1].startswith("trak: its top-k lists differ from text similarity")


def test_stage_glue_on_a_tiny_lm_reads_gradient_cosine_from_the_tracin_store(tmp_path) -> None:
    """With one checkpoint (lr 1), ReTrac (unit train and query gradients) *is* the final-checkpoint gradient
    cosine, so the baseline read back from TracIn's store must agree with it exactly; the report gets the
    section with a verdict per method."""
    import torch

    from curation.attribution.base import CheckpointModel, ScoringContext
    from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
    from curation.reports import HTMLReport
    from curation.reports.trust import add_trust_section
    from curation.stages import _influence

    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=32))
    torch.manual_seed(0)
    ckpt = CheckpointModel(model=adapter.build_model().eval(), learning_rate=1.0)
    code = ["def f(x): return x", "import os, sys", "class A: pass", "for i in range(3): print(i)"]
    legal = ["Permission is hereby granted", "THE SOFTWARE IS PROVIDED AS IS", "MIT License", "all rights reserved"]
    train = pl.DataFrame({"example_id": [f"t{i}" for i in range(8)], "text": code + legal,
                          "domain": ["code"] * 4 + ["legal"] * 4})
    queries = pl.DataFrame({"example_id": ["q0", "q1"], "text": ["def g(y): return y", "License granted"],
                            "domain": ["code", "legal"]})
    ctx = ScoringContext(adapter=adapter, checkpoints=(ckpt,), train=train, queries=queries, batch_size=4)
    store = str(tmp_path / "grads")
    tracin = _influence.tracin(_job(), store, "lm", normalize="none")
    retrac = _influence.tracin(_job(), store, "lm", normalize="both")
    matrices = {"tracin": tracin.score(ctx).matrix, "retrac": retrac.score(ctx).matrix}
    found = _influence.trust_assessment(ctx, tracin, matrices, k=3)

    row = found.agreement.filter((pl.col("method") == "retrac") & (pl.col("reference") == "gradient_cosine"))
    assert row["spearman"][0] == pytest.approx(1.0) and row["top_k_overlap"][0] == 1.0
    assert set(found.agreement["reference"]) == {"retrac", "bm25", "tfidf", "gradient_cosine"}
    assert found.purity is not None and set(found.purity["ranking"]) == {"tracin", "retrac", "bm25", "tfidf",
                                                                        "gradient_cosine"}
    assert {line.split(":")[0] for line in found.verdicts} >= {"tracin", "retrac"}
    assert any(line.startswith("retrac: its top-k lists are mostly plain gradient cosine's at the final checkpoint (overlap 1.00)")
               for line in found.verdicts)
    html = add_trust_section(HTMLReport("t"), found, 3).render()
    assert "Estimator trust" in html and found.verdicts[0].split(":")[0] in html


def _job():
    from curation.gradients.config import GradientJobConfig

    return GradientJobConfig(checkpoints="unused", train_data="unused")


def test_curate_influence_trust_writes_the_section_for_one_method(tmp_path) -> None:
    """`curate influence --trust` on a one-checkpoint byte GPT: the method's agreement with the three baselines,
    written as trust.parquet and trust.html, with the verdicts echoed."""
    import torch
    from click.testing import CliRunner

    from curation.cli import cli
    from curation.models.checkpoints import CheckpointInfo, save_checkpoint
    from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig

    config = ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=32)
    torch.manual_seed(0)
    model = ByteGPTAdapter(config).build_model()
    save_checkpoint(tmp_path / "final.safetensors", model.state_dict(),
                    CheckpointInfo(adapter="byte_gpt", model_config=dataclasses.asdict(config), step=1,
                                   learning_rate=1.0))
    pl.DataFrame({"example_id": [f"t{i}" for i in range(6)],
                  "text": ["def f(x): return x", "import os", "class A: pass", "MIT License",
                           "Permission is hereby granted", "all rights reserved"]}).write_parquet(tmp_path / "t.parquet")
    pl.DataFrame({"example_id": ["q0", "q1"], "text": ["def g(y): return y", "License granted"]}).write_parquet(
        tmp_path / "q.parquet")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["influence", "--checkpoints", str(tmp_path / "final.safetensors"),
                                      "--train", str(tmp_path / "t.parquet"), "--queries", str(tmp_path / "q.parquet"),
                                      "--method", "tracin", "--top-k", "2", "--out", str(out), "--trust"])
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out / "trust.parquet")
    assert table["method"].to_list() == ["tracin"] * 3
    assert table["reference"].to_list() == ["bm25", "tfidf", "gradient_cosine"]
    assert table["chance_overlap"].to_list() == [pytest.approx(2 / 6)] * 3
    assert "Estimator trust" in (out / "trust.html").read_text() and "tracin: its top-k lists" in result.output
