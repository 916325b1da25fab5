"""Difficulty scores against ground truth: on digits with 10 % injected label flips, VoG, EL2N, GraNd and
forgetting events rank the flipped examples above chance; forgetting events and EL2N match hand-computed cases;
the training loop's per-example records are exact and off by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import roc_auc_score

from curation.data.digits import DigitsConfig, build_digits
from curation.errors import CurationError, DataContractError
from curation.issue_tables import check_issue_table
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.selection.difficulty import (
    DifficultyConfig,
    EL2NScorer,
    ForgettingConfig,
    ForgettingScorer,
    GraNdScorer,
    VoGConfig,
    VoGScorer,
)
from curation.training.loop import RECORDS_FILE, TrainConfig, train


def noisy_run(seed: int, ckpt_dir: Path) -> tuple[pl.DataFrame, np.ndarray, MLPClassifierAdapter, list, pl.DataFrame]:
    """Digits with 10 % flipped labels, an MLP trained 12 epochs with per-example records and 6 checkpoints
    (returned as the checkpoint files)."""
    train_frame, _, noisy = build_digits(DigitsConfig(noise_fraction=0.1, seed=seed))
    flipped = train_frame["example_id"].is_in(noisy["example_id"].implode()).to_numpy()
    adapter = MLPClassifierAdapter(ClassifierConfig(hidden=(64,)))
    cfg = TrainConfig(epochs=12, batch_size=64, learning_rate=3e-3, n_checkpoints=6, seed=seed, eval_every=1000,
                      record_examples=True)
    result = train(adapter, train_frame, cfg, checkpoint_dir=ckpt_dir, show_progress=False)
    return train_frame, flipped, adapter, [str(ckpt_dir / c["file"]) for c in result.checkpoints], result.records


def auroc(scores, flipped) -> dict[str, float]:
    return {name: float(roc_auc_score(flipped, s.issues["hard_score"].to_numpy())) for name, s in scores.items()}


def all_scores(frame, files, records) -> dict:
    """Each scorer as a user configures it: checkpoint files (or the records file) in its options."""
    early = DifficultyConfig(checkpoints=tuple(files[:2]))  # EL2N/GraNd early in training, as the paper prescribes
    return {
        "vog": VoGScorer(VoGConfig(checkpoints=tuple(files[:3]))).score(frame),  # epochs 2-6 of 12
        "el2n": EL2NScorer(early).score(frame),
        "grand": GraNdScorer(early).score(frame),
        "forgetting": ForgettingScorer().score(frame, records=records),
    }


# AUROC of the flipped labels over digits seeds 0-19 (measured 2026-12-06, /tmp script = this file's noisy_run):
# vog (first 3 of 6 checkpoints) min 0.535 mean 0.583 (all 6 checkpoints: min 0.489, mean 0.557 -- not above
# chance on every seed); el2n min 0.992; grand min 0.989; forgetting min 0.971. Each threshold sits below every
# seed's value (VoG's margin is thin: it is a weak label-noise signal on this MLP).
THRESHOLDS = {"vog": 0.52, "el2n": 0.95, "grand": 0.95, "forgetting": 0.93}


def test_difficulty_scores_rank_injected_label_noise(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    frame, flipped, _, files, records = noisy_run(0, tmp_path)
    scores = all_scores(frame, files, records)
    for name, result in scores.items():
        check_issue_table(result.issues, "hard")
        assert result.summary["method"][0] == name and result.issues["example_id"].equals(frame["example_id"])
        np.testing.assert_array_equal(result.scores["score"], result.issues["hard_score"])  # prefer: hard
    values = auroc(scores, flipped)
    for name, floor in THRESHOLDS.items():
        assert values[name] > floor, values
    assert (tmp_path / RECORDS_FILE).is_file()


def test_forgetting_events_by_hand() -> None:
    # a: T F T F -> 2 events; b: F F -> never learned, scores its 2 presentations; c: F T T -> 0 events
    records = pl.DataFrame({
        "example_id": ["a", "b", "c", "a", "c", "a", "b", "a", "c"],
        "step": [1, 1, 1, 2, 2, 3, 3, 4, 4],
        "correct": [True, False, False, False, True, True, False, False, True],
    })
    out = ForgettingScorer(ForgettingConfig(prefer="easy")).score(pl.DataFrame({"example_id": ["c", "b", "a"]}),
                                                                   records=records)
    assert out.issues["hard_score"].to_list() == [0.0, 2.0, 2.0]
    assert out.issues["hard_forgetting_events"].to_list() == [0, 0, 2]
    assert out.issues["hard_never_learned"].to_list() == [False, True, False]
    assert out.issues["hard_rank"].to_list() == [3, 1, 2]  # tie b/a broken by input order
    assert out.scores["score"].to_list() == [-0.0, -2.0, -2.0]  # prefer easy: the selector keeps c first
    with pytest.raises(DataContractError, match="row 0 \\(example_id 'z'\\) was never presented"):
        ForgettingScorer().score(pl.DataFrame({"example_id": ["z"]}), records=records)
    with pytest.raises(DataContractError, match="'correct' is null"):
        ForgettingScorer().score(records=records.with_columns(correct=pl.lit(None, dtype=pl.Boolean)))
    with pytest.raises(DataContractError, match="set options.records"):
        ForgettingScorer().score()


def test_el2n_by_hand() -> None:
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=2, n_classes=2, hidden=()))
    model = adapter.build_model()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model[0].bias.zero_()
    frame = pl.DataFrame({"example_id": [0, 1], "features": [[2.0, 0.0], [0.0, 0.0]], "label": [1, 0]})
    p = 1 / (1 + np.exp(-2.0))  # softmax([2, 0])[0]
    expected = [np.sqrt(2) * p, np.sqrt(2) * 0.5]  # ||(p, 1-p) - (0, 1)|| and ||(.5, .5) - (1, 0)||
    np.testing.assert_allclose(EL2NScorer().score(frame, adapter=adapter, models=[model]).issues["hard_score"],
                               expected)
    with pytest.raises(DataContractError, match="set options.checkpoints"):
        EL2NScorer().score(frame)


def test_records_are_off_by_default_and_exact(tmp_path: Path) -> None:
    frame, _, _ = build_digits(DigitsConfig(noise_fraction=0.0))
    frame = frame.head(50)
    adapter = MLPClassifierAdapter(ClassifierConfig(hidden=(8,)))
    plain = train(adapter, frame, TrainConfig(epochs=2, batch_size=16), checkpoint_dir=tmp_path / "a",
                  show_progress=False)
    assert plain.records is None and not (tmp_path / "a" / RECORDS_FILE).exists()
    recorded = train(adapter, frame, TrainConfig(epochs=2, batch_size=16, record_examples=True),
                     checkpoint_dir=tmp_path / "b", show_progress=False)
    records = pl.read_parquet(tmp_path / "b" / RECORDS_FILE)
    assert records.equals(recorded.records) and records.height == 100
    assert records.group_by("example_id").len()["len"].to_list() == [2] * 50  # each row once per epoch
    assert records["epoch"].to_list() == [0] * 50 + [1] * 50
    for a, b in zip(plain.model.state_dict().values(), recorded.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # recording does not change training
    assert records["correct"].dtype == pl.Boolean and records["correct"].null_count() == 0


def test_lm_records_have_loss_but_no_correctness_and_vog_needs_a_classifier() -> None:
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=16))
    frame = pl.DataFrame({"example_id": ["x", "y"], "text": ["hello world", "bytes"]})
    result = train(adapter, frame, TrainConfig(epochs=1, batch_size=2, record_examples=True), show_progress=False)
    assert result.records["correct"].null_count() == 2 and result.records["loss"].is_finite().all()
    with pytest.raises(CurationError, match="VoG needs a classifier adapter"):
        VoGScorer().score(frame, adapter=adapter, models=[result.model])
    grand = GraNdScorer().score(frame, adapter=adapter, models=[result.model])
    assert (grand.issues["hard_score"] > 0).all()
