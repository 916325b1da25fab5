"""Membership scores against brute force, and the metric conventions (AUC orientation, PrivLeak, KS)."""

import numpy as np
import polars as pl
import pytest
import torch

from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.unlearning.membership import lowest_k_mean, membership_scores, token_scores
from curation.unlearning.metrics import forget_quality, mia_auc, privleak, tpr_at_fpr


def test_min_k_plus_plus_matches_brute_force_on_a_5_token_vocab() -> None:
    gen = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(2, 6, 5, generator=gen, dtype=torch.float64), -1)
    targets = torch.randint(5, (2, 6), generator=gen)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.float64)
    got = token_scores(logp, targets, mask, k=0.5)
    for b in range(2):
        n = int(mask[b].sum())
        lp, z = [], []
        for t in range(n):
            p = [float(np.exp(logp[b, t, v])) for v in range(5)]
            lpv = [float(logp[b, t, v]) for v in range(5)]
            mu = sum(pi * li for pi, li in zip(p, lpv))
            var = sum(pi * li * li for pi, li in zip(p, lpv)) - mu * mu
            lp.append(lpv[targets[b, t]])
            z.append((lpv[targets[b, t]] - mu) / np.sqrt(var))
        keep = max(1, int(0.5 * n))  # the authors' count, shared with curation.provenance.membership
        assert got["loss"][b].item() == pytest.approx(np.mean(lp))
        assert got["min_k"][b].item() == pytest.approx(np.mean(sorted(lp)[:keep]))
        assert got["min_k_pp"][b].item() == pytest.approx(np.mean(sorted(z)[:keep]))


def test_lowest_k_mean_keeps_at_least_one() -> None:
    values = torch.tensor([[3.0, 1.0, 2.0]])
    assert lowest_k_mean(values, torch.ones(1, 3), 0.01).item() == 1.0
    assert lowest_k_mean(values, torch.ones(1, 3), 1.0).item() == 2.0


def test_membership_scores_for_classifier_and_gpt() -> None:
    torch.manual_seed(0)
    clf = MLPClassifierAdapter(ClassifierConfig(n_features=3, n_classes=4, hidden=(5,)))
    model = clf.build_model()
    frame = pl.DataFrame({"example_id": ["a", "b"], "features": [[0.1, 0.2, 0.3], [1.0, 0.0, 0.5]], "label": [1, 3]})
    s = membership_scores(clf, model, frame)
    assert np.allclose(s["score_loss"], -s["loss_value"]) and np.allclose(s["score_min_k"], s["score_loss"])
    gpt = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=16))
    texts = pl.DataFrame({"example_id": ["x", "y"], "text": ["hello world", "abc"]})
    g = membership_scores(gpt, gpt.build_model(), texts)
    assert g["score_min_k_pp"].null_count() == 0
    assert (g["score_min_k"] <= g["score_loss"] + 1e-9).all()  # the lowest tokens average below the mean


def test_gpt_scores_equal_the_provenance_scorers() -> None:
    from curation.provenance.membership import loss_score, min_k_plus_plus_score, min_k_score

    torch.manual_seed(1)
    gpt = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=24))
    model = gpt.build_model()
    texts = pl.DataFrame({"example_id": ["x", "y", "z"], "text": ["hello world, again", "abc", "the quick brown fox"]})
    ours = membership_scores(gpt, model, texts, k=0.3)
    for column, scorer in (("score_loss", loss_score), ("score_min_k", min_k_score),
                           ("score_min_k_pp", min_k_plus_plus_score)):
        kwargs = {} if scorer is loss_score else {"k": 0.3}
        np.testing.assert_allclose(ours[column], scorer(gpt, model, texts, **kwargs)["score"], atol=1e-6)


def test_metric_conventions() -> None:
    members, non = np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])
    assert mia_auc(members, non) == 1.0 and mia_auc(non, members) == 0.0
    assert tpr_at_fpr(members, non, 0.05) == pytest.approx(1.0)
    assert privleak(0.75, 0.5) == pytest.approx(50.0) and privleak(0.5, 0.5) == 0.0
    rng = np.random.default_rng(0)
    assert forget_quality(rng.normal(size=200), rng.normal(size=200)) > 0.05
    assert forget_quality(rng.normal(size=200), rng.normal(2.0, size=200)) < 1e-6


def test_holdout_percentiles_calibrate_away_a_global_loss_shift() -> None:
    from curation.unlearning.verify import holdout_percentiles

    rng = np.random.default_rng(0)
    data = {("a", "holdout"): rng.normal(size=500), ("a", "forget"): rng.normal(size=200)}
    data[("b", "holdout")], data[("b", "forget")] = data[("a", "holdout")] + 3.0, data[("a", "forget")] + 3.0

    def col(model: str, split: str, _column: str) -> np.ndarray:
        return data[(model, split)]

    pa, pb = holdout_percentiles(col, "a"), holdout_percentiles(col, "b")
    assert np.allclose(pa, pb) and 0.0 <= pa.min() and pa.max() <= 1.0
    assert forget_quality(data[("a", "forget")], data[("b", "forget")]) < 1e-6  # raw losses: "different"
    assert forget_quality(pa, pb) == pytest.approx(1.0)  # calibrated: identical
