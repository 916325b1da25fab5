"""The influence sign checked by real training: continuing training with the domain of largest positive influence
up-weighted lowers the task's validation loss more than the prior mixture does, and up-weighting the most
negative domain raises it relative to the prior (CI-sized run; the benchmark does the GPT version)."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl

from curation.mixture.closed_loop import train_on_mixture
from curation.mixture.group_influence import GroupInfluenceConfig, group_influence
from curation.mixture.labels import task_losses
from curation.mixture.tikmix_d import TikmixDConfig, tikmix_d
from curation.training import TrainConfig
from curation.training.mixture_sampling import natural_mixture


def test_upweighting_a_positive_influence_domain_lowers_validation_loss(mlp64, digits_domains) -> None:
    adapter, model = mlp64
    train, val = digits_domains
    gi = group_influence(adapter, model, train, val,
                         GroupInfluenceConfig(tokens_per_domain=64, tasks=("low", "mid"), max_rows_per_task=200))
    prior = natural_mixture(train)
    cfg = TrainConfig(epochs=320 / train.height, batch_size=32, optimizer="sgd", learning_rate=0.05,
                      schedule="constant", n_checkpoints=1, eval_every=10**6, seed=1)

    def val_losses(weights: dict[str, float]) -> dict[str, float]:
        run = train_on_mixture(adapter, train, weights, cfg, model=copy.deepcopy(model))
        return task_losses(adapter, run.result.model, val, "domain", gi.tasks)

    base = val_losses(prior)
    for i, task in enumerate(gi.tasks):
        best, worst = gi.domains[int(np.argmax(gi.matrix[i]))], gi.domains[int(np.argmin(gi.matrix[i]))]
        assert gi.matrix[i].max() > 0 > gi.matrix[i].min()
        up = {d: (0.6 if d == best else 0.2) for d in gi.domains}
        down = {d: (0.6 if d == worst else 0.2) for d in gi.domains}
        assert val_losses(up)[task] < base[task] < val_losses(down)[task]
    # the TiKMiX-D mixture lowers the average task loss relative to the prior mixture, with either normalisation
    for normalization in ("max", "prior_gain"):
        sol = tikmix_d(gi.matrix, [prior[d] for d in gi.domains], TikmixDConfig(normalization=normalization),
                       tasks=gi.tasks)
        tuned = val_losses(dict(zip(gi.domains, sol.weights, strict=True)))
        assert sol.success and np.mean(list(tuned.values())) < np.mean(list(base.values())), normalization


def test_reestimation_every_n_steps_changes_the_mixture_and_keeps_positions(mlp64, digits_domains, tmp_path) -> None:
    adapter, model = mlp64
    train, val = digits_domains
    from curation.mixture.closed_loop import tikmix_reestimator

    reestimate = tikmix_reestimator(adapter, train, val.filter(pl.col("domain") == "low"),
                                    GroupInfluenceConfig(tokens_per_domain=32, max_rows_per_task=64),
                                    TikmixDConfig())
    cfg = TrainConfig(epochs=96 / train.height, batch_size=16, optimizer="sgd", learning_rate=0.05,
                      schedule="constant", seed=0)
    run = train_on_mixture(adapter, train, natural_mixture(train), cfg, model=copy.deepcopy(model),
                           checkpoint_dir=tmp_path, reestimate_every=2, reestimate=reestimate)
    assert [m["step"] for m in run.mixtures] == [0, 2, 4]
    assert run.mixtures[1]["weights"]["low"] > run.mixtures[0]["weights"]["low"]
    assert [c["step"] for c in run.result.checkpoints] == [2, 4, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000002.safetensors", "ckpt-000004.safetensors",
                                                         "ckpt-000006.safetensors"]
    assert run.result.positions["example_id"].is_unique().all()
    assert run.result.positions["position"].max() < 96
