"""Ground truth for the verification Check on a setting with real memorisation (see curation.unlearning.testbed):
the untouched original fails, an independent exact retrain passes, a token gradient-ascent step fails."""

import polars as pl
import pytest

from curation.plugins import get_plugin
from curation.unlearning.operators import UnlearnConfig, unlearn
from curation.unlearning.verify import UnlearningCheck, UnlearningInputs


def _inputs(setting, model, *, reference=True) -> UnlearningInputs:
    return UnlearningInputs(
        adapter=setting.adapter, original=setting.original, unlearned=model, forget=setting.forget,
        retain=setting.retain, holdout=setting.holdout, validation=setting.validation,
        reference=setting.reference if reference else None,
    )


@pytest.fixture(scope="module")
def verdicts(setting):
    check = UnlearningCheck()
    token = unlearn(setting.adapter, setting.original, setting.forget, setting.retain,
                    UnlearnConfig(method="gradient_ascent", steps=1, learning_rate=1e-4, optimizer="sgd")).model
    return {
        "original": check.run(_inputs(setting, setting.original)),
        "retrained": check.run(_inputs(setting, setting.retrained)),
        "token_step": check.run(_inputs(setting, token)),
        "original_no_ref": check.run(_inputs(setting, setting.original, reference=False)),
    }


def test_retrained_model_mia_auc_is_chance_and_original_is_clearly_higher(verdicts) -> None:
    m = verdicts["retrained"].metrics
    assert abs(m["mia_auc_loss_unlearned"] - 0.5) <= 0.08
    assert abs(m["mia_auc_loss_reference"] - 0.5) <= 0.08
    assert m["mia_auc_loss_original"] >= 0.7
    assert m["mia_auc_loss_original"] - m["mia_auc_loss_unlearned"] >= 0.15


def test_original_model_fails(verdicts) -> None:
    v = verdicts["original"]
    assert not v.passed and v.severity > 1
    failed = set(v.criteria.filter(~pl.col("passed"))["criterion"])
    assert {"mia_auc_gap_loss", "abs_privleak", "forget_quality", "remind_auc_gap"} <= failed
    assert v.tags()["unlearning.verified"] == "false"


def test_exact_retrain_passes(verdicts) -> None:
    v = verdicts["retrained"]
    assert v.passed, v.criteria
    assert v.severity < 1 and v.tags()["unlearning.failed_criteria"] == "none"
    assert v.metrics["conclusive"] == 1.0 and v.metrics["original_severity"] > 1  # the check had power here


def test_token_gradient_ascent_step_fails(verdicts) -> None:
    v = verdicts["token_step"]
    assert not v.passed
    assert v.metrics["mia_auc_loss_unlearned"] > v.metrics["mia_auc_loss_reference"] + 0.15


def test_without_reference_the_original_still_fails(verdicts) -> None:
    v = verdicts["original_no_ref"]
    assert not v.passed and v.metrics["has_reference"] == 0.0
    assert "forget_quality_vs_holdout" in v.criteria["criterion"].to_list()


def test_remind_sees_memorisation_only_before_unlearning(verdicts) -> None:
    original, retrained = verdicts["original"].metrics, verdicts["retrained"].metrics
    assert original["remind_auc_forget_holdout_unlearned"] >= 0.65
    assert abs(retrained["remind_auc_forget_holdout_unlearned"] - 0.5) <= 0.1


def test_check_is_registered_as_a_plugin() -> None:
    assert get_plugin("curation.checks", "unlearning") is UnlearningCheck


@pytest.mark.slow
def test_gpt_ground_truth_verdicts() -> None:
    """Same ground truth on a small byte GPT that memorises 40 of 80 doc passages (benchmarks/unlearning/
    separation.py runs it over seeds)."""
    from curation.unlearning.testbed import build_gpt_setting

    s = build_gpt_setting(0)
    check = UnlearningCheck()
    token = unlearn(s.adapter, s.original, s.forget, s.retain,
                    UnlearnConfig(method="gradient_ascent", steps=1, learning_rate=1e-4, optimizer="sgd")).model
    original, retrained, token_v = (check.run(_inputs(s, m)) for m in (s.original, s.retrained, token))
    assert not original.passed and retrained.passed and not token_v.passed
    assert abs(retrained.metrics["mia_auc_loss_unlearned"] - 0.5) <= 0.08
    assert original.metrics["mia_auc_loss_original"] >= 0.9
