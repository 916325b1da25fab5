"""Mixture-weighted training order and its use by the training loop."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curation.errors import CurationError, DataContractError
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter
from curation.training import TrainConfig, train
from curation.training.mixture_sampling import mixture_counts, mixture_order, natural_mixture

FRAME = pl.DataFrame({"example_id": [f"e{i}" for i in range(10)], "domain": list("aaaaaabbbc"),
                      "features": [[float(i)] for i in range(10)], "label": [0, 1] * 5})


def test_counts_follow_weights_exactly() -> None:
    assert mixture_counts({"a": 0.5, "b": 0.3, "c": 0.2}, 10) == {"a": 5, "b": 3, "c": 2}
    assert sum(mixture_counts({"a": 1, "b": 1, "c": 1}, 100).values()) == 100


def test_order_draws_domain_shares_and_cycles_rows_without_replacement() -> None:
    order = mixture_order(FRAME, {"a": 0.1, "b": 0.2, "c": 0.7}, 100, seed=1)
    domains = FRAME["domain"].to_numpy()[order]
    assert (domains == "c").sum() == 70 and (domains == "b").sum() == 20 and (domains == "a").sum() == 10
    b_rows = order[domains == "b"]
    assert sorted(np.bincount(b_rows)[6:9].tolist()) in ([6, 7, 7], [7, 7, 6], [6, 7, 7])
    assert np.array_equal(order, mixture_order(FRAME, {"a": 0.1, "b": 0.2, "c": 0.7}, 100, seed=1))


def test_bad_weights_and_missing_domains_are_named() -> None:
    with pytest.raises(DataContractError, match="no rows of mixture domain"):
        mixture_order(FRAME, {"a": 0.5, "zzz": 0.5}, 10)
    with pytest.raises(CurationError, match="non-negative"):
        mixture_order(FRAME, {"a": -1.0, "b": 2.0}, 10)
    with pytest.raises(DataContractError, match="missing column 'domain'"):
        mixture_order(FRAME.drop("domain"), {"a": 1.0}, 10)


def test_natural_mixture_by_rows_or_size() -> None:
    assert natural_mixture(FRAME) == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1})
    sized = FRAME.with_columns(pl.Series("n", [1] * 6 + [2] * 3 + [10]))
    assert natural_mixture(sized, size_column="n") == pytest.approx({"a": 6 / 22, "b": 6 / 22, "c": 10 / 22})


def test_train_consumes_the_given_order_and_records_positions() -> None:
    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=1, n_classes=2))
    order = mixture_order(FRAME, {"c": 1.0}, 8, seed=0)
    result = train(adapter, FRAME, TrainConfig(batch_size=4, n_checkpoints=1), order=order)
    assert result.positions["example_id"].to_list() == ["e9"]
    assert result.curve["step"].to_list()[-1] == 2
    with pytest.raises(ValueError, match="row indices"):
        train(adapter, FRAME, TrainConfig(batch_size=4), order=np.array([10]))
    default = train(adapter, FRAME, TrainConfig(batch_size=4, n_checkpoints=1, seed=3))
    assert default.positions.height == 10  # unchanged default behaviour
