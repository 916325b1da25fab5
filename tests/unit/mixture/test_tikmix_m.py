"""TiKMiX-M and RegMix recover the optimum of a known label function; box sampling stays in its box."""

from __future__ import annotations

import numpy as np
import pytest

from curation.mixture.group_influence import GroupInfluence
from curation.mixture.optimizers import MixtureProblem, RegMix, TikmixD
from curation.mixture.regmix import RegMixConfig, regmix
from curation.mixture.surrogate import SurrogateConfig
from curation.mixture.tikmix_m import SearchConfig, TikmixMConfig, box_candidates, dirichlet_search, tikmix_m
from curation.plugins import get_plugin

TARGET = np.array([0.35, 0.25, 0.25, 0.15])


def label(w: np.ndarray) -> float:
    return -float(np.sum((np.asarray(w) - TARGET) ** 2))


def test_box_candidates_sum_to_one_inside_the_box() -> None:
    anchor = np.array([0.4, 0.3, 0.2, 0.1])
    c = box_candidates(anchor, 50, 0.5, 2.0, np.random.default_rng(0))
    np.testing.assert_allclose(c.sum(1), 1.0)
    assert np.all(c >= 0.5 * anchor - 1e-12) and np.all(c <= 2.0 * anchor + 1e-12)
    assert len({tuple(np.round(r, 6)) for r in c}) == 50


def test_dirichlet_search_finds_the_exact_optimum_of_a_known_function() -> None:
    best = dirichlet_search(lambda w: -((w - TARGET) ** 2).sum(1), np.full(4, 0.25), SearchConfig(),
                            np.random.default_rng(0))
    np.testing.assert_allclose(best, TARGET, atol=0.02)


@pytest.mark.parametrize("kind", ["ridge", "lightgbm"])
def test_tikmix_m_moves_from_the_anchor_toward_the_label_optimum(kind: str) -> None:
    anchor = np.array([0.25, 0.25, 0.25, 0.25])
    sol = tikmix_m(anchor, label, TikmixMConfig(candidates=64 if kind == "lightgbm" else 24,
                                                surrogate=SurrogateConfig(kind=kind)))
    assert sol.extras["surrogate"] == kind
    assert np.abs(sol.weights - TARGET).max() < (0.03 if kind == "ridge" else 0.06)
    assert label(sol.weights) > label(anchor)


def test_regmix_recovers_the_optimum_from_random_mixtures() -> None:
    sol = regmix(np.full(4, 0.25), label, RegMixConfig(candidates=32, surrogate=SurrogateConfig(kind="ridge"),
                                                       search_samples=20000, top_k=20))
    assert np.abs(sol.weights - TARGET).max() < 0.05


def test_optimizers_are_registered_and_use_the_problem() -> None:
    gi = GroupInfluence(np.array([[4.0, 1.0, 0.0, 0.5]]), ("t",), ("a", "b", "c", "d"), (1, 1, 1, 1), (1, 1, 1, 1),
                        "identity")
    problem = MixtureProblem(("a", "b", "c", "d"), np.full(4, 0.25), gi, label)
    assert get_plugin("curation.mixture_optimizers", "tikmix_d") is TikmixD
    d = TikmixD().optimize(problem)
    assert np.argmax(d.weights) == 0
    m = get_plugin("curation.mixture_optimizers", "tikmix_m")(TikmixMConfig(candidates=16,
                                                                             surrogate=SurrogateConfig(kind="ridge")))
    assert m.optimize(problem).extras["anchor"] == pytest.approx(d.weights.tolist())
    assert get_plugin("curation.mixture_optimizers", "regmix") is RegMix


def test_influence_label_is_the_negated_tikmix_d_objective_under_either_normalisation() -> None:
    from curation.mixture.group_influence import normalize_per_task
    from curation.mixture.labels import InfluenceLabel
    from curation.mixture.tikmix_d import TikmixDConfig, tikmix_objective

    s = np.array([[4.0, 1.0, 0.0, 0.5], [0.5, 3.0, 1.0, 0.0]])
    prior = np.array([2.0, 1.0, 1.0, 0.0])  # unnormalised on purpose: the label normalises it like tikmix_d
    w = np.array([0.1, 0.2, 0.3, 0.4])
    for normalization, baseline in (("max", None), ("prior_gain", prior / prior.sum())):
        cfg = TikmixDConfig(normalization=normalization)
        expected = -tikmix_objective(w, normalize_per_task(s, cfg.eps, baseline=baseline), cfg)
        assert InfluenceLabel(s, cfg, prior=prior)(w) == pytest.approx(expected)
    with pytest.raises(ValueError, match="needs the prior mixture"):
        InfluenceLabel(s, TikmixDConfig(normalization="prior_gain"))
