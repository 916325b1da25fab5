"""``UnlearningCheck``: did an unlearned model really forget the forget set? A pass/fail verdict with evidence.

Criteria (each a value, a threshold from the config and a pass flag; the verdict passes only if all pass):

- ``mia_auc_gap_loss`` / ``mia_auc_gap_min_k_pp``: |MIA AUC(forget vs holdout) - the retrained reference's|
  (0.5 without a reference). Two-sided on purpose: an AUC far *below* the reference (over-unlearning, the forget
  set now looks stranger than unseen data) is as detectable by an attacker as residual memorisation.
- ``abs_privleak``: |MUSE PrivLeak| in percent from the Min-K% attack, relative to the reference.
- ``forget_quality``: TOFU-style KS p-value between the forget-set loss distributions of the candidate and of the
  reference, each forget loss expressed as a percentile of the same model's holdout losses (the analogue of
  TOFU's normalised truth ratio: independently trained small models differ in overall loss level, which a raw-loss
  KS test flags; the raw-loss p-value is reported as ``forget_quality_raw_*``). Without a reference: the
  candidate's forget vs holdout losses, reported as ``forget_quality_vs_holdout``.
- ``retain_loss_increase`` (nats) and ``val_loss_increase`` (relative): utility kept, measured against the worse
  of the original model and the retrained reference (matching the gold standard is never a utility failure).
- ``remind_auc_gap``: |REMIND forget-vs-holdout classifier AUC - the reference's| (0.5 without a reference).
- ``mia_auc_calibrated_gap``: |calibrated MIA AUC - 0.5|, the reference-calibrated attack of
  ``curation.unlearning.calibrated`` (score = candidate log-likelihood minus the mean over the models trained
  without the forget rows, i.e. the reference and the ``calibration`` retrains, the candidate itself excluded).
  Where the raw attacks sit near chance on a model that generalises, this one still sees memorised rows; an exact
  retrain scores 0.5 +- its null spread. Needs a reference or calibration models.

``severity`` = the worst criterion's value in threshold units (> 1 fails), a continuous score for benchmarks.
Power: the same criteria are applied to the untouched original model; if it would pass as well, the request's
rows were never detectably memorised and the verdict is marked inconclusive (``conclusive`` = 0, tag
``unlearning.conclusive=false``) rather than trusted as evidence of forgetting. ``power_min_forget_rows`` is the
request size at which the original's measured calibrated-AUC gap would fail it with power ``Phi(power_z)``, and
``verdict_line`` says in plain words "forgotten", "not forgotten" or "inconclusive: why, and what size would do".
AUC-based thresholds (MIA gaps, REMIND gap, PrivLeak) are floors: with ``se`` the standard error of an AUC of
0.5 at the forget/holdout sizes (``mia_auc_null_se``), each is widened to ``w = noise_z * sqrt(2) * se`` (the
noise of a difference of two AUCs; ``100 * w / AUC_ref`` for PrivLeak) when that is larger, so that a small
forget request does not fail an exact retrain by sampling noise alone. With 100 forget and 500 holdout rows
``w`` = 0.11; with 40 and 120, 0.19. The calibrated criterion compares one AUC with 0.5, so its threshold is
widened to ``noise_z * calibrated_null_se`` (one AUC's row noise times ``sqrt(1 + 1/K)`` for the models' own
noise): 0.094 with 100 forget rows, 360 holdout rows and K = 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from torch import nn

from curation.errors import DataContractError
from curation.models.base import ModelAdapter
from curation.unlearning.calibrated import auc_null_se, calibrate_candidates, min_forget_rows
from curation.unlearning.membership import membership_scores
from curation.unlearning.metrics import forget_quality, mia_auc, privleak, tpr_at_fpr
from curation.unlearning.remind import RemindConfig, remind_features, remind_metrics
from curation.unlearning.verdict import verdict_line

POOLS = ("forget", "retain", "holdout", "validation")


@dataclass(frozen=True, kw_only=True)
class UnlearningCheckConfig:
    """Thresholds of the unlearning verdict and the settings of its attacks."""

    max_mia_auc_gap: float = field(default=0.08, metadata={"help": "max |MIA AUC - reference AUC| (loss, Min-K%++)"})
    max_abs_privleak: float = field(default=15.0, metadata={"help": "max |PrivLeak| in percent (Min-K% attack)"})
    min_forget_quality: float = field(default=0.05, metadata={"help": "min KS p-value of forget-set losses"})
    max_retain_loss_increase: float = field(
        default=0.1, metadata={"help": "max increase of mean retain loss over the original model (nats)"}
    )
    max_val_loss_increase: float = field(
        default=0.25, metadata={"help": "max relative increase of validation loss over the original model"}
    )
    max_remind_auc_gap: float = field(default=0.1, metadata={"help": "max |REMIND AUC - reference REMIND AUC|"})
    max_calibrated_auc_gap: float = field(
        default=0.05, metadata={"help": "max |calibrated MIA AUC - 0.5| (floor; widened by noise_z, see below)"}
    )
    noise_z: float = field(
        default=2.5,
        metadata={"help": "widen AUC/PrivLeak thresholds to noise_z null standard errors of an AUC difference "
                          "at the pool sizes (small requests); 0 = fixed thresholds"},
    )
    power_z: float = field(
        default=1.64,
        metadata={"help": "power statement: the request size at which the original fails the calibrated criterion "
                          "with probability Phi(power_z) (1.64 = 95 %)"},
    )
    use_remind: bool = field(default=True, metadata={"help": "compute REMIND and include it in the verdict"})
    k: float = field(default=0.4, metadata={"help": "Min-K% / Min-K%++ fraction of lowest tokens"})
    max_eval_rows: int = field(default=1000, metadata={"help": "cap on rows per pool (seeded sample); 0 = all"})
    seed: int = field(default=0, metadata={"help": "seed for pool sampling"})
    remind: RemindConfig = field(default_factory=RemindConfig, metadata={"help": "REMIND neighbourhood settings"})

    def __post_init__(self) -> None:
        if not 0 < self.k <= 1:
            raise ValueError(f"k must be in (0, 1], got {self.k}")
        if min(self.max_mia_auc_gap, self.max_abs_privleak, self.max_retain_loss_increase,
               self.max_val_loss_increase, self.max_remind_auc_gap, self.max_calibrated_auc_gap) <= 0 \
                or not 0 < self.min_forget_quality < 1:
            raise ValueError("thresholds must be positive and min_forget_quality in (0, 1)")


@dataclass
class UnlearningInputs:
    """Models and pools to examine; ``reference`` is the model retrained without the forget set, if any;
    ``calibration`` are further retrains without it (other seeds) for the calibrated attack."""

    adapter: ModelAdapter
    original: nn.Module
    unlearned: nn.Module
    forget: pl.DataFrame
    retain: pl.DataFrame
    holdout: pl.DataFrame
    validation: pl.DataFrame
    reference: nn.Module | None = None
    calibration: list[nn.Module] = field(default_factory=list)


@dataclass
class Verification:
    """The verdict and its evidence."""

    passed: bool
    severity: float
    criteria: pl.DataFrame  # criterion, value, threshold, rule, passed
    metrics: dict[str, float]
    scores: pl.DataFrame  # model, split, example_id, loss_value, score_loss, score_min_k, score_min_k_pp, score_calibrated
    remind: pl.DataFrame | None  # model, example_id, split, REMIND features
    verdict_line: str = ""  # "forgotten: ...", "not forgotten: ..." or "inconclusive: ..."

    @property
    def verdict(self) -> str:
        """``forgotten``, ``not forgotten`` or ``inconclusive`` (the head of ``verdict_line``)."""
        return self.verdict_line.split(":", 1)[0]

    def tags(self) -> dict[str, str]:
        """Model-version tags summarising the verdict."""
        tags = {"unlearning.verified": str(self.passed).lower(), "unlearning.severity": f"{self.severity:.4g}"}
        failed = self.criteria.filter(~pl.col("passed"))["criterion"].to_list()
        tags["unlearning.failed_criteria"] = ",".join(failed) or "none"
        tags["unlearning.conclusive"] = str(bool(self.metrics.get("conclusive"))).lower()
        tags["unlearning.verdict"] = self.verdict
        tags["unlearning.verdict_line"] = self.verdict_line
        for key in ("mia_auc_loss_unlearned", "mia_auc_calibrated_unlearned", "privleak", "forget_quality"):
            if key in self.metrics:
                tags[f"unlearning.{key}"] = f"{self.metrics[key]:.4g}"
        return tags


def _cap(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    return frame.sample(n, seed=seed).sort("example_id") if n and frame.height > n else frame


class UnlearningCheck:
    """Check registered as ``unlearning`` in ``curation.checks``."""

    name = "unlearning"
    config_cls = UnlearningCheckConfig

    def __init__(self, config: UnlearningCheckConfig | None = None) -> None:
        self.config = config or UnlearningCheckConfig()

    def _scores(
        self, inputs: UnlearningInputs, pools: dict[str, pl.DataFrame], models: dict[str, nn.Module]
    ) -> pl.DataFrame:
        """Membership scores of every model on every pool, stacked with ``model`` and ``split`` columns."""
        frames = []
        for model_name, model in models.items():
            for split, frame in pools.items():
                s = membership_scores(inputs.adapter, model, frame, k=self.config.k)
                frames.append(s.with_columns(pl.col("example_id").cast(pl.String),
                                             model=pl.lit(model_name), split=pl.lit(split)))
        return pl.concat(frames).select("model", "split", pl.exclude("model", "split"))

    def run(self, inputs: UnlearningInputs) -> Verification:
        """Score every model on every pool, compute the metrics, compare them with the thresholds."""
        cfg = self.config
        for name in POOLS:
            if getattr(inputs, name).height < 2:
                raise DataContractError(f"the {name} pool needs at least 2 rows, got {getattr(inputs, name).height}")
        pools = {p: _cap(getattr(inputs, p), cfg.max_eval_rows, cfg.seed) for p in POOLS}
        models = {"unlearned": inputs.unlearned, "original": inputs.original}
        if inputs.reference is not None:
            models["reference"] = inputs.reference
        scores = self._scores(inputs, pools, models)
        calibration = {f"calibration_{i + 1}": m for i, m in enumerate(inputs.calibration)}
        if calibration:
            mia_pools = {s: pools[s] for s in ("forget", "holdout")}
            scores = pl.concat([scores, self._scores(inputs, mia_pools, calibration)])

        def col(model: str, split: str, column: str) -> np.ndarray:
            sel = scores.filter((pl.col("model") == model) & (pl.col("split") == split))[column]
            return sel.to_numpy().astype(float)

        metrics: dict[str, float] = {}
        attacks = [a for a in ("loss", "min_k", "min_k_pp") if scores[f"score_{a}"].null_count() == 0]
        for model in models:
            for attack in attacks:
                f, h = col(model, "forget", f"score_{attack}"), col(model, "holdout", f"score_{attack}")
                metrics[f"mia_auc_{attack}_{model}"] = mia_auc(f, h)
                metrics[f"mia_tpr_at_1fpr_{attack}_{model}"] = tpr_at_fpr(f, h, 0.01)
                metrics[f"mia_tpr_at_5fpr_{attack}_{model}"] = tpr_at_fpr(f, h, 0.05)
            for split in POOLS:
                metrics[f"{split}_loss_{model}"] = float(col(model, split, "loss_value").mean())
        n_f, n_h = pools["forget"].height, pools["holdout"].height
        metrics["mia_auc_null_se"] = auc_null_se(n_f, n_h)  # AUC sampling noise at 0.5
        retrains = (["reference"] if inputs.reference is not None else []) + list(calibration)
        scores = calibrate_candidates(scores, list(models), retrains, col, metrics)
        widen = cfg.noise_z * math.sqrt(2) * metrics["mia_auc_null_se"]
        auc_tol, remind_tol = max(cfg.max_mia_auc_gap, widen), max(cfg.max_remind_auc_gap, widen)
        has_ref = inputs.reference is not None
        metrics["has_reference"] = float(has_ref)
        remind_frame = None
        if cfg.use_remind:
            remind_pools = {s: pools[s] for s in ("forget", "retain", "holdout")}
            frames = []
            for name, model in models.items():
                feats = remind_features(inputs.adapter, model, remind_pools, cfg.remind)
                metrics.update({f"{k}_{name}": v for k, v in remind_metrics(feats, cfg.remind).items()})
                frames.append(feats.with_columns(model=pl.lit(name)))
            remind_frame = pl.concat(frames)
        tolerances = {"auc": auc_tol, "remind": remind_tol, "widen": widen}
        criteria = self._criteria("unlearned", metrics, col, attacks, tolerances)
        # power: the same criteria applied to the untouched original; if it passes too, the verdict is inconclusive
        original_criteria = self._criteria("original", metrics, col, attacks, tolerances)
        severity = float(criteria["severity"].max())
        passed = bool(criteria["passed"].all())
        metrics["verified"] = float(passed)
        metrics["severity"] = severity
        metrics["original_severity"] = float(original_criteria["severity"].max())
        metrics["conclusive"] = float(not original_criteria["passed"].all())
        metrics["privleak"] = metrics["privleak_unlearned"]
        metrics["forget_quality"] = metrics["forget_quality_unlearned"]
        if "mia_auc_calibrated_original" in metrics:
            needed = min_forget_rows(
                metrics["mia_auc_calibrated_original"] - 0.5, n_h, int(metrics["calibration_models_original"]),
                noise_z=cfg.noise_z, power_z=cfg.power_z, floor=cfg.max_calibrated_auc_gap,
            )
            if math.isfinite(needed):
                metrics["power_min_forget_rows"] = needed
        line = verdict_line(passed, criteria, original_criteria, metrics, n_f, n_h, cfg)
        metrics["verdict_code"] = {"forgotten": 1.0, "not forgotten": 0.0}.get(line.split(":", 1)[0], -1.0)
        return Verification(passed, severity, criteria, metrics, scores, remind_frame, line)

    def _criteria(
        self, candidate: str, metrics: dict[str, float], col: Callable[[str, str, str], np.ndarray],
        attacks: list[str], tol: dict[str, float],
    ) -> pl.DataFrame:
        """Criteria rows for ``candidate`` (a model name in ``metrics``) against the reference or chance."""
        cfg = self.config
        has_ref = bool(metrics["has_reference"])
        rows = []
        for attack in ("loss", "min_k_pp"):
            if attack in attacks:
                ref_auc = metrics[f"mia_auc_{attack}_reference"] if has_ref else 0.5
                rows.append((f"mia_auc_gap_{attack}", abs(metrics[f"mia_auc_{attack}_{candidate}"] - ref_auc),
                             tol["auc"], "<="))
        pl_attack = "min_k" if "min_k" in attacks else "loss"
        pl_ref = metrics[f"mia_auc_{pl_attack}_reference"] if has_ref else 0.5
        leak = metrics[f"privleak_{candidate}"] = privleak(metrics[f"mia_auc_{pl_attack}_{candidate}"], pl_ref)
        rows.append(("abs_privleak", abs(leak), max(cfg.max_abs_privleak, 100 * tol["widen"] / pl_ref), "<="))
        if has_ref:
            fq = forget_quality(holdout_percentiles(col, candidate), holdout_percentiles(col, "reference"))
            metrics[f"forget_quality_raw_{candidate}"] = forget_quality(
                col(candidate, "forget", "loss_value"), col("reference", "forget", "loss_value"))
        else:
            fq = forget_quality(col(candidate, "forget", "loss_value"), col(candidate, "holdout", "loss_value"))
        metrics[f"forget_quality_{candidate}"] = fq
        rows.append(("forget_quality" if has_ref else "forget_quality_vs_holdout", fq, cfg.min_forget_quality, ">="))
        models = ("original", "reference") if has_ref else ("original",)
        retain_base = max(metrics[f"retain_loss_{m}"] for m in models)
        val_base = max(metrics[f"validation_loss_{m}"] for m in models)
        rows.append(("retain_loss_increase", metrics[f"retain_loss_{candidate}"] - retain_base,
                     cfg.max_retain_loss_increase, "<="))
        rows.append(("val_loss_increase", metrics[f"validation_loss_{candidate}"] / max(val_base, 1e-12) - 1,
                     cfg.max_val_loss_increase, "<="))
        if f"mia_auc_calibrated_{candidate}" in metrics:
            rows.append(("mia_auc_calibrated_gap", abs(metrics[f"mia_auc_calibrated_{candidate}"] - 0.5),
                         max(cfg.max_calibrated_auc_gap, cfg.noise_z * metrics[f"mia_auc_calibrated_null_se_{candidate}"]),
                         "<="))
        if cfg.use_remind:
            ref_remind = metrics["remind_auc_forget_holdout_reference"] if has_ref else 0.5
            rows.append(("remind_auc_gap", abs(metrics[f"remind_auc_forget_holdout_{candidate}"] - ref_remind),
                         tol["remind"], "<="))
        criteria = pl.DataFrame(rows, schema=["criterion", "value", "threshold", "rule"], orient="row")
        return criteria.with_columns(
            passed=pl.when(pl.col("rule") == "<=").then(pl.col("value") <= pl.col("threshold"))
            .otherwise(pl.col("value") >= pl.col("threshold")),
            severity=pl.Series([_severity(v, t, r) for _, v, t, r in rows]),
        )


def holdout_percentiles(col: Callable[[str, str, str], np.ndarray], model: str) -> np.ndarray:
    """Each forget row's loss as a percentile of the same model's holdout losses (calibrates away run-to-run
    differences of overall loss level between independently trained models; uniform when forget ~ holdout)."""
    holdout = np.sort(col(model, "holdout", "loss_value"))
    return np.searchsorted(holdout, col(model, "forget", "loss_value"), side="right") / holdout.size


def _severity(value: float, threshold: float, rule: str) -> float:
    """Value in threshold units (> 1 = fails); p-values (``>=``) on a log scale."""
    if rule == "<=":
        return max(value, 0.0) / threshold
    return math.log(max(value, 1e-300)) / math.log(threshold) if value < 1 else 0.0
