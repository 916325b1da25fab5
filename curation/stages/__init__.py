"""The built-in DVC stages, one module each: ``python -m curation.stages.<stage>`` runs the ``<stage>`` block of
params.yaml (what ``curate init`` writes into a user's dvc.yaml). ``STAGE_CONFIGS`` maps stage names to their
config dataclass (lazily imported), for the CLI and hooks."""

from __future__ import annotations

from collections.abc import Callable


def _stage(name: str) -> Callable[[], type]:
    def resolve() -> type:
        from curation.config import stages

        return getattr(stages, name)

    return resolve


STAGE_CONFIGS: dict[str, Callable[[], type]] = {
    "prepare_data": _stage("PrepareDataConfig"),
    "validate_data": _stage("ValidateDataConfig"),
    "train_lm": _stage("TrainLMConfig"),
    "train_classifier": _stage("TrainClassifierConfig"),
    "build_report": _stage("BuildReportConfig"),
    "select_data": _stage("SelectDataConfig"),
    "select_targeted": _stage("SelectTargetedConfig"),
    "refresh_predictor": _stage("RefreshPredictorConfig"),
    "compute_gradients": lambda: __import__("curation.gradients.config", fromlist=["_"]).ComputeGradientsConfig,
    "score_influence": lambda: __import__("curation.gradients.config", fromlist=["_"]).ScoreInfluenceConfig,
    "detect_label_errors": lambda: __import__("curation.selection.config", fromlist=["_"]).DetectLabelErrorsConfig,
    "retrain_classifier": lambda: __import__("curation.selection.config", fromlist=["_"]).RetrainClassifierConfig,
    "forget_request": lambda: __import__("curation.unlearning.config", fromlist=["_"]).ForgetRequestConfig,
    "unlearn_retrain": lambda: __import__("curation.unlearning.config", fromlist=["_"]).UnlearnRetrainConfig,
    "unlearn": lambda: __import__("curation.unlearning.config", fromlist=["_"]).UnlearnStageConfig,
    "verify_unlearning": lambda: __import__("curation.unlearning.config", fromlist=["_"]).VerifyUnlearningConfig,
    "optimize_mixture": lambda: __import__("curation.mixture.config", fromlist=["_"]).OptimizeMixtureConfig,
    "train_lm_mixture": lambda: __import__("curation.mixture.config", fromlist=["_"]).TrainLMMixtureConfig,
    "provenance_suspects": lambda: __import__("curation.provenance.config", fromlist=["_"]).ProvenanceSuspectsConfig,
    "test_provenance": lambda: __import__("curation.provenance.config", fromlist=["_"]).TestProvenanceConfig,
}
