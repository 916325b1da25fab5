"""``UnlearningCheck``: did an unlearned model really forget the forget set? A pass/fail verdict with evidence.

Criteria (each a value, a threshold from the config and a pass flag; the verdict passes only if all pass):

- ``mia_auc_gap_loss`` / ``mia_auc_gap_min_k_pp``: |MIA AUC(forget vs holdout) - the retrained reference's|
  (0.5 without a reference). Two-sided on purpose: an AUC far *below* the reference (over-unlearning, the forget
  set now looks stranger than unseen data) is as detectable by an attacker as residual memorisation.
- ``abs_privleak``: |MUSE PrivLeak| in percent from the Min-K% attack, relative to the reference.
- ``forget_quality``: TOFU-style KS p-value between forget-set losses of the candidate and of the reference
  (without a reference: the candidate's forget vs holdout losses, reported as ``forget_quality_vs_holdout``).
- ``retain_loss_increase`` (nats) and ``val_loss_increase`` (relative): utility kept w.r.t. the original model.
- ``remind_auc_gap``: |REMIND forget-vs-holdout classifier AUC - the reference's| (0.5 without a reference).

``severity`` = the worst criterion's value in threshold units (> 1 fails), a continuous score for benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from torch import nn

from curation.models.base import ModelAdapter
from curation.unlearning.membership import membership_scores
from curation.unlearning.metrics import forget_quality, mia_auc, privleak, tpr_at_fpr
from curation.unlearning.remind import RemindConfig, remind_features, remind_metrics

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
    use_remind: bool = field(default=True, metadata={"help": "compute REMIND and include it in the verdict"})
    k: float = field(default=0.4, metadata={"help": "Min-K% / Min-K%++ fraction of lowest tokens"})
    max_eval_rows: int = field(default=1000, metadata={"help": "cap on rows per pool (seeded sample); 0 = all"})
    seed: int = field(default=0, metadata={"help": "seed for pool sampling"})
    remind: RemindConfig = field(default_factory=RemindConfig, metadata={"help": "REMIND neighbourhood settings"})

    def __post_init__(self) -> None:
        if not 0 < self.k <= 1:
            raise ValueError(f"k must be in (0, 1], got {self.k}")
        if min(self.max_mia_auc_gap, self.max_abs_privleak, self.max_retain_loss_increase,
               self.max_val_loss_increase, self.max_remind_auc_gap) <= 0 or not 0 < self.min_forget_quality < 1:
            raise ValueError("thresholds must be positive and min_forget_quality in (0, 1)")


@dataclass
class UnlearningInputs:
    """Models and pools to examine; ``reference`` is the model retrained without the forget set, if any."""

    adapter: ModelAdapter
    original: nn.Module
    unlearned: nn.Module
    forget: pl.DataFrame
    retain: pl.DataFrame
    holdout: pl.DataFrame
    validation: pl.DataFrame
    reference: nn.Module | None = None


@dataclass
class Verification:
    """The verdict and its evidence."""

    passed: bool
    severity: float
    criteria: pl.DataFrame  # criterion, value, threshold, rule, passed
    metrics: dict[str, float]
    scores: pl.DataFrame  # model, split, example_id, loss_value, score_loss, score_min_k, score_min_k_pp
    remind: pl.DataFrame | None  # model, example_id, split, REMIND features

    def tags(self) -> dict[str, str]:
        """Model-version tags summarising the verdict."""
        tags = {"unlearning.verified": str(self.passed).lower(), "unlearning.severity": f"{self.severity:.4g}"}
        failed = self.criteria.filter(~pl.col("passed"))["criterion"].to_list()
        tags["unlearning.failed_criteria"] = ",".join(failed) or "none"
        for key in ("mia_auc_loss_unlearned", "privleak", "forget_quality"):
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

    def _scores(self, inputs: UnlearningInputs, pools: dict[str, pl.DataFrame], models: dict[str, nn.Module]):
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
                raise ValueError(f"the {name} pool needs at least 2 rows, got {getattr(inputs, name).height}")
        pools = {p: _cap(getattr(inputs, p), cfg.max_eval_rows, cfg.seed) for p in POOLS}
        models = {"unlearned": inputs.unlearned, "original": inputs.original}
        if inputs.reference is not None:
            models["reference"] = inputs.reference
        scores = self._scores(inputs, pools, models)

        def col(model: str, split: str, column: str) -> np.ndarray:
            sel = scores.filter((pl.col("model") == model) & (pl.col("split") == split))[column]
            return sel.to_numpy().astype(float)

        metrics: dict[str, float] = {}
        attacks = [a for a in ("loss", "min_k", "min_k_pp") if scores[f"score_{a}"].null_count() == 0]
        for model in models:
            for attack in attacks:
                f, h = col(model, "forget", f"score_{attack}"), col(model, "holdout", f"score_{attack}")
                metrics[f"mia_auc_{attack}_{model}"] = mia_auc(f, h)
                metrics[f"mia_tpr_at_5fpr_{attack}_{model}"] = tpr_at_fpr(f, h, 0.05)
            for split in POOLS:
                metrics[f"{split}_loss_{model}"] = float(col(model, split, "loss_value").mean())
        has_ref = inputs.reference is not None
        base = "reference" if has_ref else None
        rows = []
        for attack in ("loss", "min_k_pp"):
            if attack in attacks:
                ref_auc = metrics[f"mia_auc_{attack}_{base}"] if base else 0.5
                gap = abs(metrics[f"mia_auc_{attack}_unlearned"] - ref_auc)
                rows.append((f"mia_auc_gap_{attack}", gap, cfg.max_mia_auc_gap, "<="))
        pl_attack = "min_k" if "min_k" in attacks else "loss"
        metrics["privleak"] = privleak(metrics[f"mia_auc_{pl_attack}_unlearned"],
                                       metrics[f"mia_auc_{pl_attack}_{base}"] if base else 0.5)
        rows.append(("abs_privleak", abs(metrics["privleak"]), cfg.max_abs_privleak, "<="))
        other = col("reference", "forget", "loss_value") if has_ref else col("unlearned", "holdout", "loss_value")
        metrics["forget_quality"] = forget_quality(col("unlearned", "forget", "loss_value"), other)
        fq_name = "forget_quality" if has_ref else "forget_quality_vs_holdout"
        rows.append((fq_name, metrics["forget_quality"], cfg.min_forget_quality, ">="))
        rows.append(("retain_loss_increase", metrics["retain_loss_unlearned"] - metrics["retain_loss_original"],
                     cfg.max_retain_loss_increase, "<="))
        rows.append(("val_loss_increase",
                     metrics["validation_loss_unlearned"] / max(metrics["validation_loss_original"], 1e-12) - 1,
                     cfg.max_val_loss_increase, "<="))
        remind_frame = None
        if cfg.use_remind:
            remind_pools = {s: pools[s] for s in ("forget", "retain", "holdout")}
            frames = []
            for model in ("unlearned", "reference") if has_ref else ("unlearned",):
                feats = remind_features(inputs.adapter, models[model], remind_pools, cfg.remind)
                metrics.update({f"{k}_{model}": v for k, v in remind_metrics(feats, cfg.remind).items()})
                frames.append(feats.with_columns(model=pl.lit(model)))
            remind_frame = pl.concat(frames)
            ref_remind = metrics["remind_auc_forget_holdout_reference"] if has_ref else 0.5
            rows.append(("remind_auc_gap", abs(metrics["remind_auc_forget_holdout_unlearned"] - ref_remind),
                         cfg.max_remind_auc_gap, "<="))
        criteria = pl.DataFrame(rows, schema=["criterion", "value", "threshold", "rule"], orient="row")
        criteria = criteria.with_columns(
            passed=pl.when(pl.col("rule") == "<=").then(pl.col("value") <= pl.col("threshold"))
            .otherwise(pl.col("value") >= pl.col("threshold")),
            severity=pl.Series([_severity(v, t, r) for _, v, t, r in rows]),
        )
        severity = float(criteria["severity"].max())
        passed = bool(criteria["passed"].all())
        metrics["verified"] = float(passed)
        metrics["severity"] = severity
        metrics["has_reference"] = float(has_ref)
        return Verification(passed, severity, criteria, metrics, scores, remind_frame)


def _severity(value: float, threshold: float, rule: str) -> float:
    """Value in threshold units (> 1 = fails); p-values (``>=``) on a log scale."""
    if rule == "<=":
        return max(value, 0.0) / threshold
    return math.log(max(value, 1e-300)) / math.log(threshold) if value < 1 else 0.0
