"""TiKMiX-D against a brute-force grid optimum, its constraints, and its fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from curation.errors import CurationError
from curation.mixture.group_influence import normalize_per_task
from curation.mixture.tikmix_d import TikmixDConfig, entropy, tikmix_d, tikmix_objective


def _grid_optimum(s: np.ndarray, prior: np.ndarray, cfg: TikmixDConfig, step: float = 0.0025) -> float:
    """Brute force over a simplex grid (vectorised), with the same constraints."""
    s_hat = normalize_per_task(s, cfg.eps, baseline=prior if cfg.normalization == "prior_gain" else None)
    a, b = np.meshgrid(np.arange(0, 1 + 1e-9, step), np.arange(0, 1 + 1e-9, step))
    w = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
    w = w[w[:, 2] >= -1e-12].clip(0, None)
    if cfg.pareto:
        w = w[np.all((w - prior) @ s_hat.T >= -1e-12, axis=1)]
    p_hat = w @ s_hat.T
    wc = np.clip(w, 1e-12, None)
    values = cfg.alpha * p_hat.std(axis=1) - cfg.beta * p_hat.sum(axis=1) + cfg.gamma * (wc * np.log(wc)).sum(axis=1)
    assert np.isclose(values[0], tikmix_objective(w[0], s_hat, cfg))
    return float(values.min())


@pytest.mark.parametrize("normalization", ["max", "prior_gain"])
@pytest.mark.parametrize("pareto", [True, False])
def test_slsqp_reaches_grid_optimum_and_respects_constraints(pareto: bool, normalization: str) -> None:
    s = np.array([[3.0, 0.5, -1.0], [0.2, 2.0, 0.4]])
    prior = np.array([0.2, 0.3, 0.5])
    cfg = TikmixDConfig(pareto=pareto, normalization=normalization)
    sol = tikmix_d(s, prior, cfg)
    assert sol.success
    assert sol.weights.sum() == pytest.approx(1.0) and (sol.weights >= 0).all()
    if pareto:
        assert np.all(normalize_per_task(s) @ (sol.weights - prior) >= -1e-6)
    assert sol.objective <= _grid_optimum(s, prior, cfg) + 1e-4


def test_helpful_domain_gets_more_weight_and_entropy_alone_gives_uniform() -> None:
    s = np.array([[5.0, 1.0, 0.0, -1.0]])
    w = tikmix_d(s, None, TikmixDConfig(pareto=False)).weights
    assert np.argmax(w) == 0 and np.argmin(w) == 3
    uniform = tikmix_d(s, None, TikmixDConfig(alpha=0.0, beta=0.0, pareto=False)).weights
    np.testing.assert_allclose(uniform, 0.25, atol=1e-5)
    assert entropy(uniform) == pytest.approx(np.log(4))


def test_prior_gain_ignores_influence_shared_by_every_domain() -> None:
    """A constant added to a task's row (what every domain teaches alike) cannot be changed by any mixture:
    prior_gain gives the same mixture with and without it, while the paper's max normalisation is pulled toward
    uniform by it (the shared part squeezes its P̂ toward 1 for every domain)."""
    contrast = np.array([[1.0, 0.2, 0.0, 0.1], [0.3, 1.0, 0.0, 0.2]])
    shared = contrast + np.array([[5.0], [8.0]])
    prior = np.full(4, 0.25)
    gain = TikmixDConfig(normalization="prior_gain")
    np.testing.assert_allclose(tikmix_d(shared, prior, gain).weights, tikmix_d(contrast, prior, gain).weights,
                               atol=1e-5)
    paper_shared = tikmix_d(shared, prior).weights
    assert paper_shared[:2].sum() < tikmix_d(shared, prior, gain).weights[:2].sum()
    assert np.abs(paper_shared - 0.25).max() < 0.05
    with pytest.raises(ValueError, match="normalization"):
        TikmixDConfig(normalization="minmax")


def test_floor_and_cap_relative_to_prior() -> None:
    s = np.array([[10.0, 0.0, 0.0]])
    prior = np.array([1 / 3, 1 / 3, 1 / 3])
    w = tikmix_d(s, prior, TikmixDConfig(gamma=0.01, cap_ratio=1.5, floor_ratio=0.5, pareto=False)).weights
    assert w[0] <= 0.5 + 1e-6 and np.all(w >= 1 / 6 - 1e-6)


def test_square_diagonal_matrix_leaves_only_the_prior_feasible() -> None:
    """Every task prefers its own domain: any move hurts some task, so the Pareto constraint keeps the prior."""
    s = np.eye(3) * 2 - 0.5
    prior = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(tikmix_d(s, prior).weights, prior, atol=1e-4)


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(CurationError, match="finite"):
        tikmix_d(np.array([[np.nan, 1.0]]))
    with pytest.raises(CurationError, match="prior mixture must have 2"):
        tikmix_d(np.array([[1.0, 2.0]]), [1.0])
    with pytest.raises(ValueError):
        TikmixDConfig(cap_ratio=0.5)
