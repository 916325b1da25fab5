"""Ground truth: TracIn self-influence finds the flipped labels of the digits training set (10% noise, the demo's
MLP recipe) with average precision >= 0.97 (peers 0.93-0.98); the projected variant the demo stores stays close."""

import pytest
from sklearn.metrics import average_precision_score

from curation.attribution.base import ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer
from curation.attribution.trak import TRAKScorer
from curation.data.digits import DigitsConfig, build_digits
from curation.gradients import ProjectionConfig
from curation.gradients.jobs import load_checkpoints
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.training import TrainConfig, train
from curation.training.outputs import train_into

RECIPE = TrainConfig(epochs=30.0, batch_size=64, optimizer="sgd", learning_rate=0.1, momentum=0.9,
                     weight_decay=1e-4, schedule="constant", n_checkpoints=5, eval_every=10**6, seed=0)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    train_frame, test_frame, noisy = build_digits(DigitsConfig(noise_fraction=0.1, seed=0))
    out = tmp_path_factory.mktemp("digits")
    train_into(out, lambda tmp: train(MLPClassifierAdapter(ClassifierConfig()), train_frame, RECIPE,
                                      checkpoint_dir=tmp, show_progress=False), source_digest="digits")
    adapter, checkpoints = load_checkpoints(out)
    ctx = ScoringContext(adapter=adapter, checkpoints=checkpoints, train=train_frame, queries=test_frame.head(4),
                         batch_size=256)
    is_flipped = train_frame["example_id"].is_in(noisy["example_id"].to_list()).to_numpy()
    return ctx, is_flipped


def test_tracin_self_influence_finds_flipped_labels(digits_run) -> None:
    ctx, is_flipped = digits_run
    assert is_flipped.sum() == 144
    exact = TracInScorer(TracInConfig(projection=ProjectionConfig(kind="identity"))).self_influence(ctx)
    ap = average_precision_score(is_flipped, exact)
    print(f"digits TracIn self-influence AP (exact) = {ap:.4f}")
    assert ap >= 0.97
    sketch = TracInScorer(TracInConfig(projection=ProjectionConfig(kind="gaussian", dim=512))).self_influence(ctx)
    ap_sketch = average_precision_score(is_flipped, sketch)
    print(f"digits TracIn self-influence AP (gaussian k=512) = {ap_sketch:.4f}")
    assert ap_sketch >= 0.96


def test_trak_self_influence_finds_flipped_labels(digits_run) -> None:
    ctx, is_flipped = digits_run
    ap = average_precision_score(is_flipped, TRAKScorer().self_influence(ctx))
    print(f"digits TRAK self-influence AP (5 checkpoints, k=512) = {ap:.4f}")
    assert ap >= 0.95
