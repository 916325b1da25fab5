"""One targeted selection run, shared by ``curate select-targeted`` and the ``select_targeted`` / ``refresh_predictor``
stages: a model-based method scores or selects pool rows for a few target tasks, the budget Selector keeps the set,
and the outputs of ``curate select`` are written (``filtered.parquet``, ``selection.parquet``, ``manifest.json``,
``not_selected_issues.parquet`` + ``summary.parquet``, via :func:`curation.selection.apply.write_filtered` and
:func:`curation.selection.selector.selection_issues`).

Methods (``METHODS``) come in two kinds:

- **scorers** give every pool row a score (higher = more wanted) that the budget Selector ranks under the
  configured budget, quotas and dedup: ``less``, ``gist`` (warm-up + LoRA gradients, ``curation.selection_scorers``),
  ``mates`` (one-step-probe oracle on a sample + MLP predictor) and ``nn_cift`` (gradient-cosine oracle on a sample
  + pairwise InfluenceNetwork);
- **selectors** choose a set by their own rule (``curation.selectors``): ``bids`` (task-balanced, on LESS/GIST
  scores), ``tarot`` (whitened gradient features, OT ratio estimation when the budget is 0), ``dealrec``
  (total-risk influence + effort, stratified) and ``ideal`` (k-NN graph influence; needs no model). The budget
  (``fraction`` or ``count``) becomes the method's own size; its selection order becomes a rank-preserving score
  (kept rows above all others, in order; the rest by the method's own score), which the Selector keeps with
  ``topk`` and a count budget equal to the method's set, so every method ends in the same Selector.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from curation.config import to_dict
from curation.errors import ConfigError, DataContractError
from curation.io import read_table, write_parquet
from curation.models.references import PlainCheckpoints, load_final_model
from curation.plugins import MethodSpec, build_method
from curation.selection.apply import write_filtered
from curation.selection.selector import Selector, SelectorConfig, selection_issues
from curation.selection.targeted.features import compute_features, task_labels
from curation.selection.text_shards import source_files

SCORERS, SELECTORS = "curation.selection_scorers", "curation.selectors"
# method -> registry group; the scorers' score matrix or the selectors' own rule
METHODS = {"less": SCORERS, "gist": SCORERS, "mates": SCORERS, "nn_cift": SCORERS,
           "bids": SELECTORS, "tarot": SELECTORS, "dealrec": SELECTORS, "ideal": SELECTORS}
NEEDS_TARGETS = frozenset({"less", "gist", "mates", "nn_cift", "bids", "tarot"})
NEEDS_MODEL = frozenset(METHODS) - {"ideal"}
FEATURE_SCORERS = ("less", "gist")  # what bids (score matrix) and tarot (gradient features) are built on
BUDGET_OPTION = {"bids": "fraction", "tarot": "fraction", "dealrec": "fraction", "ideal": "budget"}


@dataclass(frozen=True)
class TargetedRun:
    """What a run wrote and measured (``figures``: method-specific numbers such as the predictor's Spearman)."""

    manifest: dict[str, Any]
    selection: pl.DataFrame
    summary: pl.DataFrame
    figures: dict[str, float]


def read_targets(path: str | os.PathLike[str], *, task_column: str, per_task: int = 0,
                 text_column: str = "text") -> pl.DataFrame:
    """The target table (text + task column), keeping the first ``per_task`` rows of each task when set."""
    table = read_table(path)
    if text_column not in table.columns:
        raise DataContractError(f"{path}: missing column '{text_column}' (columns: {', '.join(table.columns)})")
    try:
        task_labels(table, task_column)
    except DataContractError as exc:
        raise DataContractError(f"{path}: {str(exc).removeprefix('targets: ')}") from None
    if per_task:
        table = table.filter(pl.int_range(pl.len()).over(task_column) < per_task)
    if table.height == 0:
        raise DataContractError(f"{path}: the target table is empty")
    return table


def read_pool(pool: str | os.PathLike[str], *, adapter: Any, text_column: str = "text") -> pl.DataFrame:
    """The pool (one file or a folder of shards) as one frame, checked against the adapter's data contract."""
    from curation.gradients.cli_support import check_examples

    files = source_files(pool)
    frame = pl.concat([read_table(f) for f in files], how="vertical_relaxed")
    for column in ("example_id", text_column):
        if column not in frame.columns:
            raise DataContractError(f"{files[0]}: missing column '{column}' (columns: {', '.join(frame.columns)})")
    if adapter is not None:
        return check_examples(frame, str(pool), what="pool", adapter=adapter)
    if frame.height == 0:
        raise DataContractError(f"{pool}: no rows (pool table)")
    return frame


def check_request(method: str, *, checkpoints: str | None, targets: str | None, selector: SelectorConfig,
                  options: dict[str, Any]) -> None:
    """Refuse a run that cannot work before anything is loaded (one line naming the option)."""
    from curation._internal.suggest import did_you_mean

    if method not in METHODS:
        raise ConfigError(f"--method: unknown targeted method '{method}'{did_you_mean(method, list(METHODS))} "
                          f"(valid: {', '.join(METHODS)})")
    if method in NEEDS_MODEL and not checkpoints:
        raise ConfigError(f"--method {method} needs --checkpoints (the model whose gradients or losses it reads)")
    if method in NEEDS_TARGETS and not targets:
        raise ConfigError(f"--method {method} needs --targets (a table of target examples with a task column)")
    if method in BUDGET_OPTION:
        if BUDGET_OPTION[method] in options:
            raise ConfigError(f"--option {BUDGET_OPTION[method]}: set the size of a {method} selection with "
                              f"--budget/--value")
        if selector.budget == "tokens" or selector.group_column or selector.method == "gumbel":
            raise ConfigError(f"--method {method} chooses its set by its own rule: use --budget fraction|count "
                              f"without --group-column or --gumbel")


def run_targeted_selection(
    pool: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, method: str, options: dict[str, Any],
    selector: SelectorConfig, checkpoints: str | None = None, plain: PlainCheckpoints | None = None,
    targets: str | None = None, task_column: str = "task", targets_per_task: int = 0,
    features_from: MethodSpec | str | dict[str, Any] = "less", holdout: int = 0, show_progress: bool = False,
) -> TargetedRun:
    """Run ``method`` on ``pool`` for the ``targets`` tasks and write the selection outputs to ``out_dir``.

    ``holdout`` (mates, nn_cift): label that many rows the predictor never saw with its oracle and record the
    Spearman correlation of predicted and oracle scores as ``figures['heldout_spearman']``."""
    check_request(method, checkpoints=checkpoints, targets=targets, selector=selector, options=options)
    feature_spec = MethodSpec.parse(features_from, where="features_from")
    if method in ("bids", "tarot") and feature_spec.name not in FEATURE_SCORERS:
        raise ConfigError(f"--features-from: '{feature_spec.name}' is not one of {', '.join(FEATURE_SCORERS)}")
    adapter, model = load_final_model(checkpoints, plain=plain) if method in NEEDS_MODEL else (None, None)
    frame = read_pool(pool, adapter=adapter, text_column=selector.text_column)
    target_frame = (read_targets(targets, task_column=task_column, per_task=targets_per_task)
                    if targets and method in NEEDS_TARGETS else None)
    for column in (selector.group_column, selector.token_column):
        if column and column not in frame.columns:
            raise DataContractError(f"{pool}: missing column '{column}' (columns: {', '.join(frame.columns)})")
    n = frame.height
    if method in FEATURE_SCORERS:  # the scorer reads the targets' task column itself
        options = {"task_column": task_column, **options}
    feature_spec = replace(feature_spec, options={"task_column": task_column, **feature_spec.options})
    if method in BUDGET_OPTION:
        size = _method_size(selector, n)
        options = {**options, BUDGET_OPTION[method]: size if method == "ideal" else size / n}
    group = METHODS[method]
    impl = build_method(group, {"name": method, "options": options}, where=f"--method {method}")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    score, figures, used = _score(method, impl, adapter, model, frame, target_frame, feature_spec,
                                  task_column, show_progress)
    figures["method_s"] = time.perf_counter() - t0
    if holdout and method in ("mates", "nn_cift"):
        figures["heldout_spearman"] = _heldout_spearman(method, impl, adapter, model, frame, target_frame, score,
                                                        used["_probed"].to_numpy(), holdout, task_column)
    if group == SELECTORS:
        kept = int(used["keep"].sum())
        score = _rank_score(used, score)
        selector = replace(selector, budget="count", value=float(kept), method="topk")
    needed = [c for c in dict.fromkeys([selector.text_column, selector.group_column, selector.token_column]) if c]
    scored = pl.DataFrame({"example_id": frame["example_id"], "score": score}).hstack(frame.select(needed))
    selection = Selector(selector).select(scored, where=f"select-targeted ({method})")
    out = Path(out_dir)
    files = source_files(pool)
    config = to_dict(impl.config)
    extra: dict[str, Any] = {"scorer": {"name": method, "options": config}, "kept": int(selection["keep"].sum()),
                             "pool_rows": n, "budget": {"kind": selector.budget, "value": selector.value,
                                                        "method": selector.method, "seed": selector.seed},
                             "figures": figures}
    if target_frame is not None:  # which target rows were used: the digest covers the whole file
        extra["targets"] = {"task_column": task_column, "per_task": targets_per_task, "rows": target_frame.height,
                            "tasks": sorted(set(target_frame[task_column].cast(pl.Utf8).to_list()))}
    if method in ("bids", "tarot"):
        extra["features_from"] = {"name": feature_spec.name, "options": feature_spec.options}
    if checkpoints:
        extra["checkpoints"] = str(checkpoints)
    manifest = write_filtered([str(f) for f in files] if len(files) > 1 else str(files[0]), selection, out,
                              selector=Selector.name, config=selector, write_selection=True,
                              inputs={"targets": targets} if target_frame is not None else None, extra=extra)
    issues, summary = selection_issues(selection, method=method, **figures)
    write_parquet(issues, out / "not_selected_issues.parquet")
    write_parquet(summary, out / "summary.parquet")
    return TargetedRun(manifest, selection, summary, figures)


def _method_size(selector: SelectorConfig, n: int) -> int:
    size = math.ceil(selector.value * n - 1e-9) if selector.budget == "fraction" else int(selector.value)
    if size > n:
        raise DataContractError(f"--value: budget of {size} rows exceeds the {n} pool rows")
    return size


def _rank_score(chosen: pl.DataFrame, own: np.ndarray) -> np.ndarray:
    """Kept rows above every other row, in the method's order; the rest in the order of the method's own score."""
    own = np.nan_to_num(np.asarray(own, dtype=np.float64))
    top = (float(own.max()) if own.size else 0.0) + 1.0
    rank = chosen["rank"].to_numpy() if "rank" in chosen.columns else None
    keep = chosen["keep"].to_numpy().astype(bool)
    if rank is None:  # a set without an order: the kept rows by their own score
        return np.where(keep, own + (top - float(own.min()) if own.size else 0.0), own)
    order_score = top + keep.sum() - np.nan_to_num(rank.astype(np.float64), nan=0.0)
    return np.where(keep, order_score, own)


def _score(method: str, impl: Any, adapter: Any, model: Any, pool: pl.DataFrame, targets: pl.DataFrame | None,
           feature_spec: MethodSpec, task_column: str, show_progress: bool
           ) -> tuple[np.ndarray, dict[str, float], pl.DataFrame]:
    """``(per-row score, figures, method output)`` of one method (the output carries keep/rank for selectors)."""
    ids = pool["example_id"]
    if method in ("less", "gist"):
        frame = impl.score(adapter, model, pool, targets, show_progress=show_progress).to_frame(ids)
        return frame["score"].to_numpy(), {}, frame
    if method == "mates":
        frame = impl.refresh(adapter, model, pool, targets)
        probed = np.flatnonzero(frame["oracle_label"].is_not_null().to_numpy())
        return frame["score"].to_numpy(), _predictor_figures(impl, getattr(impl, "stats", {}), pool.height), \
            frame.with_columns(pl.Series("_probed", np.isin(np.arange(pool.height), probed)))
    if method == "nn_cift":
        from curation.selection.targeted.model_inputs import nn_cift_scores

        scores, stats, sample = nn_cift_scores(impl, adapter, model, pool, targets, task_column=task_column)
        return scores.score(), _predictor_figures(impl, stats, pool.height), scores.to_frame(ids).with_columns(
            pl.Series("_probed", np.isin(np.arange(pool.height), sample)))
    if method == "ideal":
        from curation.selection.targeted.predictors import text_embeddings

        chosen = impl.select(text_embeddings(pool["text"].to_list()), ids)
        return np.zeros(pool.height), {"spread": float(impl.spread)}, chosen
    if method == "dealrec":
        from curation.selection.targeted.model_inputs import surrogate_gradients

        grads, effort = surrogate_gradients(adapter, model, pool, dim=impl.config.proj_dim,
                                            seed=impl.config.seed, show_progress=show_progress)
        chosen = impl.select(grads, effort, ids)
        return chosen["score"].to_numpy(), {}, chosen
    scorer = build_method(SCORERS, {"name": feature_spec.name, "options": feature_spec.options},
                          where="--features-from")
    if method == "bids":
        scores = scorer.score(adapter, model, pool, targets, show_progress=show_progress)
        return impl.task_scores(scores).score(), {}, impl.select(scores, ids)
    from curation.selection.targeted.warmup import warmup_lora

    cfg = scorer.config
    warm = warmup_lora(adapter, model, pool, cfg.warmup, show_progress=show_progress)
    features = compute_features(adapter, warm, pool, targets, cfg.features, task_column=cfg.task_column,
                                show_progress=show_progress)
    chosen = impl.select(features, ids)
    return impl.scores(features).matrix.max(axis=1), {}, chosen


def _heldout_spearman(method: str, predictor: Any, adapter: Any, model: Any, pool: pl.DataFrame,
                      targets: pl.DataFrame, predicted: np.ndarray, probed: np.ndarray, rows: int,
                      task_column: str) -> float:
    """Spearman correlation between predicted and oracle scores on ``rows`` seeded unlabelled pool rows."""
    from curation.selection.targeted.model_inputs import oracle_row_scores
    from curation.selection.targeted.predictors import spearman

    unseen = np.flatnonzero(~probed)
    if len(unseen) < 3:
        raise DataContractError(f"holdout: only {len(unseen)} pool rows were not labelled for training; need >= 3")
    pick = np.sort(np.random.default_rng(predictor.config.seed + 1).choice(unseen, size=min(rows, len(unseen)),
                                                                         replace=False))
    oracle = oracle_row_scores(method, predictor, adapter, model, pool[pick], targets, task_column=task_column)
    return spearman(predicted[pick], oracle)


def _predictor_figures(predictor: Any, stats: dict[str, Any], n: int) -> dict[str, float]:
    """Validation Spearman of a learned predictor and the share of the all-oracle cost its round saved."""
    figures = {"val_spearman": float(predictor.val_spearman)}
    split_half = float(stats.get("oracle_split_half_spearman", float("nan")))
    if math.isfinite(split_half):  # the oracle's own test-retest agreement: a ceiling for the predictor's Spearman
        figures["oracle_split_half_spearman"] = split_half
    per_example = stats.get("oracle_s_per_example")
    if per_example:
        spent = sum(float(stats.get(k, 0.0)) for k in ("embed_s", "oracle_s", "predictor_s"))
        all_oracle = float(per_example) * n
        figures |= {"oracle_rows": float(stats.get("probed", 0)), "oracle_s_per_example": float(per_example),
                    "all_oracle_s": all_oracle, "round_s": spent, "cost_saved": 1.0 - spent / all_oracle}
    return figures
