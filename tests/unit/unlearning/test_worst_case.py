"""Challenging Forgets: capped-simplex projection against an exact solution, and the search beats random sets on
its own objective (post-unlearning forget loss)."""

import numpy as np
import pytest
import torch

from curation.unlearning.worst_case import (
    WorstCaseConfig,
    _pool_losses,
    project_capped_simplex,
    sign_sgd_unlearn,
    worst_case_forget_set,
)


def test_projection_is_the_euclidean_projection_onto_the_capped_simplex() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 0.6, size=8)
    w = project_capped_simplex(a, 3.0)
    assert w.sum() == pytest.approx(3.0, abs=1e-8) and w.min() >= 0 and w.max() <= 1
    ref = minimize(lambda x: ((x - a) ** 2).sum(), np.full(8, 3 / 8), method="SLSQP", bounds=[(0, 1)] * 8,
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - 3.0}], options={"ftol": 1e-12})
    assert np.allclose(w, ref.x, atol=1e-5)


def test_worst_case_set_is_harder_to_unlearn_than_random_sets(setting) -> None:
    cfg = WorstCaseConfig(size=40, operator="gradient_ascent", outer_steps=4, inner_steps=5, seed=0)
    selection, history = worst_case_forget_set(setting.adapter, setting.original, setting.train, cfg)
    assert selection["selected"].sum() == 40 and history.height == 4
    assert selection["difficulty"].sum() == pytest.approx(40, abs=1e-6)
    rng = np.random.default_rng(1)

    def post_unlearning_loss(mask: np.ndarray) -> float:
        torch.manual_seed(0)
        model = sign_sgd_unlearn(setting.adapter, setting.original, setting.train, mask.astype(float), cfg, rng)
        return float(_pool_losses(setting.adapter, model, setting.train)[mask].mean())

    worst = post_unlearning_loss(selection["selected"].to_numpy())
    random_losses = []
    for _ in range(5):
        mask = np.zeros(setting.train.height, dtype=bool)
        mask[rng.choice(setting.train.height, 40, replace=False)] = True
        random_losses.append(post_unlearning_loss(mask))
    assert worst < min(random_losses), (worst, random_losses)


def test_size_is_validated(setting) -> None:
    with pytest.raises(ValueError, match="size must be in"):
        worst_case_forget_set(setting.adapter, setting.original, setting.train[:10], WorstCaseConfig(size=10))
