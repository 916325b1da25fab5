"""Additivity check: the influence of a real mixed sample tracks the additive prediction S·w (Pearson > 0.8 on a
small real model), the probe re-scores a domain's own sample exactly as group influence did, and a deliberately
non-additive measurement is reported far lower."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from curation.mixture.additivity import AdditivityConfig, additivity_check, mixed_sample, pearson
from curation.mixture.group_influence import (
    GroupInfluenceConfig,
    group_influence,
    sample_domain,
    summed_gradient,
)
from curation.mixture.hessian import HessianConfig

PRIOR = np.full(3, 1 / 3)


@pytest.fixture(scope="module")
def measured(mlp64, digits_domains):
    adapter, model = mlp64
    train, val = digits_domains
    gi = group_influence(adapter, model, train, val,
                         GroupInfluenceConfig(tokens_per_domain=120, tasks=("low", "high"), max_rows_per_task=200))
    return gi, additivity_check(adapter, model, train, gi, PRIOR, AdditivityConfig(mixtures=16, seed=1))


def test_mixed_sample_influence_is_additive(measured) -> None:
    _, result = measured
    assert result.tasks == ("low", "high") and result.predicted.shape == result.measured.shape == (2, 16)
    # realised compositions stay in the 0.5-2x box around the prior (up to one row of granularity) and sum to ~1
    assert np.allclose(result.mixtures.sum(axis=1), 1.0, atol=0.03)
    assert result.mixtures.min() > 0.5 / 3 - 0.02 and result.mixtures.max() < 2 / 3 + 0.02
    assert min(result.pearson.values()) > 0.8 and result.pooled_pearson > 0.8
    metrics = result.metrics()
    assert metrics["additivity_pearson"] == pytest.approx(np.mean(list(result.pearson.values())))
    assert metrics["additivity_pearson_min"] > 0.8 and metrics["additivity_mixtures"] == 16
    frame = result.frame()
    assert frame.height == 32 and {"w_high", "w_low", "w_mid", "predicted", "measured"} <= set(frame.columns)


@pytest.mark.parametrize("kind", ["identity", "ekfac"])
def test_probe_rescores_a_domain_sample_exactly_like_group_influence(mlp64, digits_domains, kind: str) -> None:
    adapter, model = mlp64
    train, val = digits_domains
    cfg = GroupInfluenceConfig(tokens_per_domain=50, tasks=("low", "mid"), max_rows_per_task=100, seed=4,
                               hessian=HessianConfig(kind=kind, rows=200))
    gi = group_influence(adapter, model, train, val, cfg)
    for j, domain in enumerate(gi.domains):
        # a one-hot mixture drawn with the influence seed is exactly the domain's own sample
        sample, drawn = mixed_sample(adapter, train, np.eye(3)[j], gi.tokens, gi.domains, seed=4)
        own = sample_domain(adapter, train.filter(pl.col("domain") == domain), 50, seed=4)
        assert sample["example_id"].to_list() == own["example_id"].to_list() and drawn[j] == gi.tokens[j]
        score = gi.probe.influence(summed_gradient(adapter, model, sample, gi.probe.modules)[None])[:, 0]
        np.testing.assert_allclose(score, gi.matrix[:, j], rtol=1e-6, atol=1e-9)


def test_non_additive_measurement_is_reported_lower(mlp64, digits_domains, measured) -> None:
    """Normalising each domain part of the mixed sample to a unit gradient erases its share: not additive in w."""
    adapter, model = mlp64
    train, _ = digits_domains
    gi, additive = measured

    def per_domain_unit(sample: pl.DataFrame) -> torch.Tensor:
        parts = [summed_gradient(adapter, model, rows, gi.probe.modules)
                 for _, rows in sample.group_by("domain", maintain_order=True)]
        return torch.stack([g / g.norm() for g in parts]).sum(0)

    broken = additivity_check(adapter, model, train, gi, PRIOR, AdditivityConfig(mixtures=16, seed=1),
                              sample_gradient=per_domain_unit)
    np.testing.assert_allclose(broken.predicted, additive.predicted)  # same mixtures, same prediction
    assert max(broken.pearson.values()) < 0.65 and min(additive.pearson.values()) > 0.8
    assert min(additive.pearson.values()) - max(broken.pearson.values()) > 0.3
    assert broken.pooled_pearson < additive.pooled_pearson - 0.3


def test_config_and_pearson_edge_cases() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        AdditivityConfig(mixtures=2)
    with pytest.raises(ValueError, match="box or dirichlet"):
        AdditivityConfig(sampling="grid")
    assert np.isnan(pearson(np.ones(4), np.arange(4.0)))
    assert pearson(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)
