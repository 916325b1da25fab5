"""Quad against ground truth: the UCB cluster score and neighbour-shared rewards equal hand-computed values, and
on a pool with a planted target domain the bandit, driven by EK-FAC (or TracIn) influence of a small byte GPT,
selects mostly that domain while scoring only a sample of the pool."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from curation.attribution.base import CheckpointModel
from curation.errors import DataContractError, PluginError
from curation.issue_tables import check_issue_table
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.embedding import EmbeddingConfig
from curation.selection.quad import QuadConfig, QuadSelector, _Bandit
from curation.training.loop import TrainConfig, train

WORDS = ("river", "stone", "garden", "window", "silver", "morning", "quiet", "bridge", "paper", "yellow")


def planted_pool(seed: int, per_domain: int = 120, n_target: int = 30) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three byte-distinct domains of 32-character rows -- digit groups (the target's domain), lowercase words and
    upper-case punctuation codes -- and ``n_target`` fresh digit rows as the target."""
    rng = np.random.default_rng(seed)

    def digits() -> str:
        return " ".join("".join(rng.choice(list("0123456789"), 4)) for _ in range(7))[:32]

    def words() -> str:
        return " ".join(rng.choice(WORDS, 8))[:32]

    def codes() -> str:
        return "-".join("".join(rng.choice(list("ABCDEFXYZ!?#"), 3)) for _ in range(9))[:32]

    rows = [(f"{name}-{i}", name, make()) for name, make in (("digits", digits), ("words", words), ("codes", codes))
            for i in range(per_domain)]
    pool = pl.DataFrame(rows, schema=["example_id", "domain", "text"], orient="row").sample(
        fraction=1.0, shuffle=True, seed=seed)
    return pool, pl.DataFrame({"text": [digits() for _ in range(n_target)]})


def trained_model(pool: pl.DataFrame, seed: int) -> tuple[ByteGPTAdapter, list[CheckpointModel]]:
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=32, block_size=32))
    cfg = TrainConfig(epochs=2, batch_size=16, learning_rate=3e-3, seed=seed, n_checkpoints=1)
    result = train(adapter, pool, cfg, show_progress=False)
    return adapter, [CheckpointModel(model=result.model, learning_rate=cfg.learning_rate)]


def quad_config(influence: str, seed: int) -> QuadConfig:
    return QuadConfig(embedding=EmbeddingConfig(dim=16, min_df=1, seed=seed), n_clusters=6, keep_fraction=1 / 3,
                      influence={"name": influence, "options": {}}, clusters_per_iteration=2, samples_per_cluster=5,
                      block_size=10, n_queries=16, fit_rows=64, seed=seed)


def digit_share(result, pool: pl.DataFrame) -> float:
    kept = ~result.issues["is_off_target_issue"].to_numpy()
    return float((pool["domain"].to_numpy()[kept] == "digits").mean())


def test_cluster_score_and_shared_rewards_by_hand() -> None:
    share = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bandit = _Bandit(np.zeros(3), np.zeros(3), share)
    bandit.update(0, 2.0)  # cluster 1 is a neighbour at weight 0.5
    bandit.update(2, -1.0)
    np.testing.assert_allclose(bandit.reward_sum, [2.0, 1.0, -1.0])
    np.testing.assert_allclose(bandit.pulls, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(bandit.mean(), [2.0, 2.0, -1.0])
    bonus = np.sqrt(2 * math.log(2) / (np.array([1.0, 0.5, 1.0]) + 1))
    np.testing.assert_allclose(bandit.cluster_score(0.3), [2.0, 2.0, -1.0] + 0.3 * bonus)


# Share of planted-domain rows among the 120 rows Quad keeps (random = 1/3), seeds 0-19 (measured 2026-12-06):
# ekfac 1.00 and tracin 1.00 on every seed. Before the initial sweep over all clusters (see quad.py) the same
# seeds gave ekfac min 0.008 mean 0.74 and tracin min 0.00 mean 0.81: a cluster pulled first could take the
# budget. The floor leaves room for one block (10 rows) of another domain per 120.
FLOOR = {"ekfac": 0.9, "tracin": 0.9}


@pytest.mark.parametrize("influence", ["ekfac", "tracin"])
def test_planted_target_domain_is_selected(influence: str) -> None:
    torch.set_num_threads(1)
    pool, target = planted_pool(0)
    adapter, checkpoints = trained_model(pool, 0)
    result = QuadSelector(quad_config(influence, 0)).score(pool, target, adapter=adapter, checkpoints=checkpoints)
    check_issue_table(result.issues, "off_target")
    summary = result.summary.to_dicts()[0]
    assert summary["n_examples"] - summary["n_issues"] == 120
    assert summary["rows_scored"] < pool.height  # influence on a sample only
    assert digit_share(result, pool) > FLOOR[influence]
    order = result.issues["off_target_selection_order"].to_numpy()
    assert sorted(order[order > 0].tolist()) == list(range(1, 121))


def test_quad_loads_configured_checkpoints_and_refuses_bad_options(tmp_path: Path) -> None:
    pool, target = planted_pool(1, per_domain=20, n_target=5)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=32))
    result = train(adapter, pool, TrainConfig(epochs=1, batch_size=16, n_checkpoints=1), checkpoint_dir=tmp_path,
                   show_progress=False)
    config = QuadConfig(checkpoints=(str(tmp_path / result.checkpoints[0]["file"]),), n_clusters=3, block_size=5,
                        embedding=EmbeddingConfig(dim=8, min_df=1), keep_fraction=0.25, n_queries=4, fit_rows=16)
    out = QuadSelector(config).score(pool, target)
    assert int((~out.issues["is_off_target_issue"]).sum()) == 15
    with pytest.raises(DataContractError, match="set options.checkpoints"):
        QuadSelector().score(pool, target)
    with pytest.raises(PluginError, match="unknown method 'ekfak'"):
        QuadSelector(QuadConfig(influence={"name": "ekfak"}, checkpoints=config.checkpoints)).score(pool, target)
