"""The Selector: turn per-example selection scores into a kept set under a budget.

Protocol (every selection method -- DSIR, BETR, BM25, Quad, training-dynamics scores -- ends here):

**Input** is one polars frame with a row per pool example:

- ``example_id`` (unique) and ``score`` (finite float; **higher = more wanted**). With ``method = "gumbel"`` the
  score is read as a log-weight ``log w(x)``: keeping the ``k`` largest ``score + G``, ``G ~ Gumbel(0, 1)``, draws
  ``k`` examples without replacement with probability proportional to ``w`` (Gumbel top-k). ``method = "topk"``
  keeps the ``k`` largest scores (deterministic, less diverse).
- optional ``eligible`` (bool): rows with ``false`` are never kept (``reason = "ineligible"``; e.g. DSIR's
  minimum document length).
- the columns the config names: ``text_column`` when ``dedup`` is on, ``group_column`` for quotas,
  ``token_column`` (or ``text_column``, counted in whitespace words) for a token budget.

**Budget** (``budget`` + ``value``): ``fraction`` of the eligible pool rows (after
dedup and the ``eligible`` mask; ``ceil(value * n_eligible)``), ``count`` rows, or
``tokens``. A token budget takes the ranked examples in order while the running token sum stays within the
budget and stops at the first example that would exceed it, so the kept set is a prefix of the ranking. A budget
larger than what the eligible pool holds is an error (never a silent shortfall).

**Quotas**: with ``group_column`` set, the budget is split across groups -- by ``quotas`` (``group -> share``,
shares summing to 1; unlisted groups get none) or, with no quotas, in proportion to each group's eligible pool
size. Row budgets are split by largest remainder (ties by group name), token budgets by ``floor``. Each group is
then selected on its own with the same ranking; a group too small for its quota is an error naming it.

**Determinism**: the Gumbel noise is drawn once per call from ``numpy.random.default_rng(seed)`` in input row
order, and every tie is broken by input row order, so the same frame and config always give the same set.

**Exact duplicates** (``dedup``): rows whose ``text_column`` is identical to an earlier-ranked row's are dropped
before budgeting (``reason = "duplicate"``); of a duplicate group the row with the highest score (then the
earliest row) is the one that stays eligible.

**Output** (:meth:`Selector.select`): ``example_id, keep, reason, score, rank`` in input order (plus
``group_column`` when set); ``reason`` is ``kept``, ``not_selected``, ``duplicate`` or ``ineligible``; ``rank`` is
the 1-based position in the selection order (duplicates and ineligible rows last). :func:`selection_issues`
turns it into the ``not_selected`` issue table of docs/output-contract.md, and
:func:`curation.selection.apply.write_filtered` writes the filtered Parquet with its manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from curation.errors import DataContractError
from curation.issue_tables import dataset_summary, issue_table

KEPT, NOT_SELECTED, DUPLICATE, INELIGIBLE = "kept", "not_selected", "duplicate", "ineligible"
ISSUE = "not_selected"


@dataclass(frozen=True, kw_only=True)
class SelectorConfig:
    """How many examples to keep (fraction, count or tokens), how to rank them, per-group quotas and dedup."""

    budget: Literal["fraction", "count", "tokens"] = field(
        default="fraction", metadata={"help": "what value counts: fraction of the eligible pool rows | rows | tokens"})
    value: float = field(default=0.1, metadata={"help": "the budget: a fraction in [0, 1], a row count or a "
                                                         "token count"})
    method: Literal["gumbel", "topk"] = field(
        default="gumbel", metadata={"help": "gumbel: sample without replacement proportional to exp(score) "
                                            "(Gumbel top-k) | topk: the highest scores"})
    seed: int = field(default=0, metadata={"help": "seed of the Gumbel noise"})
    group_column: str = field(default="", metadata={"help": "column whose groups get quotas; empty = none"})
    quotas: dict[str, float] = field(
        default_factory=dict, metadata={"help": "group -> share of the budget (sum 1); empty with a group column "
                                                "= proportional to each group's eligible pool size"})
    dedup: bool = field(default=True, metadata={"help": "drop exact duplicates of text_column before budgeting"})
    text_column: str = field(default="text", metadata={"help": "text for dedup and word counts"})
    token_column: str = field(default="", metadata={"help": "per-row token counts for a token budget; empty = "
                                                            "whitespace words of text_column"})

    def __post_init__(self) -> None:
        if self.budget not in ("fraction", "count", "tokens"):
            raise ValueError(f"budget must be fraction, count or tokens, got {self.budget!r}")
        if self.method not in ("gumbel", "topk"):
            raise ValueError(f"method must be gumbel or topk, got {self.method!r}")
        if not math.isfinite(self.value) or self.value < 0:
            raise ValueError(f"value must be a finite number >= 0, got {self.value}")
        if self.budget == "fraction" and self.value > 1:
            raise ValueError(f"a fraction budget must lie in [0, 1], got {self.value}")
        if self.budget != "fraction" and self.value != int(self.value):
            raise ValueError(f"a {self.budget} budget must be a whole number, got {self.value}")
        if self.quotas and not self.group_column:
            raise ValueError("quotas need a group_column")
        if any(not math.isfinite(s) or s < 0 for s in self.quotas.values()):
            raise ValueError("quota shares must be finite and >= 0")
        if self.quotas and abs(sum(self.quotas.values()) - 1) > 1e-6:
            raise ValueError(f"quota shares must sum to 1, got {sum(self.quotas.values()):.6g}")


class Selector:
    """Registered as ``budget`` in ``curation.selectors``: scores -> kept set under a fraction/count/token budget,
    with optional per-group quotas, Gumbel top-k or plain top-k, and exact-duplicate removal."""

    name: ClassVar[str] = "budget"
    config_cls: ClassVar[type] = SelectorConfig

    def __init__(self, config: SelectorConfig | None = None) -> None:
        self.config = config or SelectorConfig()

    def select(self, frame: pl.DataFrame, *, where: str = "selection scores") -> pl.DataFrame:
        """``frame`` (see the module docstring) -> ``example_id, keep, reason, score, rank`` in input order."""
        cfg = self.config
        _check_input(frame, cfg, where)
        n = frame.height
        score = frame["score"].to_numpy().astype(np.float64)
        key = score + np.random.default_rng(cfg.seed).gumbel(size=n) if cfg.method == "gumbel" else score.copy()
        eligible = frame["eligible"].to_numpy().astype(bool) if "eligible" in frame.columns else np.ones(n, bool)
        reason = np.where(eligible, NOT_SELECTED, INELIGIBLE).astype(object)
        if cfg.dedup:
            dup = _duplicates(frame[cfg.text_column], score) & eligible
            reason[dup] = DUPLICATE
            eligible = eligible & ~dup
        order = np.lexsort((np.arange(n), -key, ~eligible))  # eligible first, key descending, then row order
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(1, n + 1)
        tokens = _tokens(frame, cfg) if cfg.budget == "tokens" else None
        keep = np.zeros(n, dtype=bool)
        groups = frame[cfg.group_column].cast(pl.Utf8).to_numpy() if cfg.group_column else np.full(n, "", object)
        for group, budget in self._budgets(groups, eligible, tokens, where).items():
            members = order[(groups[order] == group) & eligible[order]]
            label = f"{where}: {cfg.group_column} {group!r}" if cfg.group_column else where
            keep[_take(members, budget, tokens, label)] = True
        reason[keep] = KEPT
        columns: dict[str, Any] = {"example_id": frame["example_id"], "keep": keep, "reason": reason.astype(str),
                                   "score": score, "rank": rank}
        if cfg.group_column:
            columns[cfg.group_column] = frame[cfg.group_column]
        return pl.DataFrame(columns)

    def _budgets(self, groups: np.ndarray, eligible: np.ndarray, tokens: np.ndarray | None,
                 where: str) -> dict[str, float]:
        """Budget of each group (rows or tokens); one pseudo-group ``""`` when no group column is set."""
        cfg = self.config
        n_eligible = int(eligible.sum())
        total = math.ceil(cfg.value * n_eligible - 1e-9) if cfg.budget == "fraction" else int(cfg.value)
        present = sorted(set(groups[eligible].tolist()))
        if not cfg.group_column:
            return {"": total}
        if cfg.quotas:
            unknown = sorted(set(cfg.quotas) - set(groups.tolist()))
            if unknown:
                raise DataContractError(f"{where}: quota group {unknown[0]!r} is not in column "
                                        f"'{cfg.group_column}' (groups: {', '.join(sorted(set(groups.tolist())))})")
            shares = {g: cfg.quotas.get(g, 0.0) for g in present} | dict(cfg.quotas)
        else:
            sizes = {g: float(np.sum(eligible & (groups == g))) for g in present}
            shares = {g: sizes[g] / max(sum(sizes.values()), 1.0) for g in present}
        if tokens is not None:
            return {g: math.floor(total * s + 1e-9) for g, s in shares.items()}
        return _largest_remainder(shares, total)


def _check_input(frame: pl.DataFrame, cfg: SelectorConfig, where: str) -> None:
    if frame.height == 0:
        raise DataContractError(f"{where}: the pool is empty")
    needed = ["example_id", "score"]
    needed += [cfg.text_column] if cfg.dedup or (cfg.budget == "tokens" and not cfg.token_column) else []
    needed += [c for c in (cfg.group_column, cfg.token_column) if c]
    for column in needed:
        if column not in frame.columns:
            raise DataContractError(f"{where}: missing column '{column}' (columns: {', '.join(frame.columns)})")
    if frame["example_id"].n_unique() != frame.height:
        row = int(np.flatnonzero(frame["example_id"].is_duplicated().to_numpy())[1])
        raise DataContractError(f"{where}: row {row}: duplicate example_id {frame['example_id'][row]!r}")
    score = frame["score"].cast(pl.Float64, strict=False).to_numpy()
    bad = np.flatnonzero(~np.isfinite(score) | frame["score"].is_null().to_numpy())
    if bad.size:
        raise DataContractError(f"{where}: row {bad[0]} (example_id {frame['example_id'][int(bad[0])]!r}): score "
                                f"is null or not finite")
    if cfg.group_column and frame[cfg.group_column].null_count():
        row = int(np.flatnonzero(frame[cfg.group_column].is_null().to_numpy())[0])
        raise DataContractError(f"{where}: row {row}: group column '{cfg.group_column}' is null")
    if "eligible" in frame.columns and (frame["eligible"].dtype != pl.Boolean or frame["eligible"].null_count()):
        raise DataContractError(f"{where}: column 'eligible' must be boolean without nulls")


def _duplicates(text: pl.Series, score: np.ndarray) -> np.ndarray:
    """True for every row whose text equals that of a higher-scored (then earlier) row (exact string equality)."""
    order = np.lexsort((np.arange(len(score)), -score))
    first = text.fill_null("").gather(pl.Series(order)).is_first_distinct().to_numpy()
    dup = np.empty(len(score), dtype=bool)
    dup[order] = ~first
    return dup


def _tokens(frame: pl.DataFrame, cfg: SelectorConfig) -> np.ndarray:
    if cfg.token_column:
        counts = frame[cfg.token_column]
        if not counts.dtype.is_integer() or counts.null_count() or (counts < 0).any():
            raise DataContractError(f"token column '{cfg.token_column}' must hold non-negative integers")
        return counts.to_numpy().astype(np.int64)
    return frame[cfg.text_column].fill_null("").str.count_matches(r"\S+").to_numpy().astype(np.int64)


def _largest_remainder(shares: dict[Any, float], total: int) -> dict[Any, int]:
    exact = {g: total * s for g, s in shares.items()}
    counts = {g: math.floor(v + 1e-9) for g, v in exact.items()}
    left = total - sum(counts.values())
    for g in sorted(exact, key=lambda g: (-round(exact[g] - counts[g], 9), str(g)))[:left]:  # ties: by name
        counts[g] += 1
    return counts


def _take(members: np.ndarray, budget: float, tokens: np.ndarray | None, label: str) -> np.ndarray:
    """The first rows of ``members`` (already in selection order) that fit ``budget``."""
    if tokens is None:
        if budget > len(members):
            raise DataContractError(f"{label}: budget of {int(budget)} rows exceeds the {len(members)} "
                                    f"eligible rows")
        return members[: int(budget)]
    cumulative = np.cumsum(tokens[members])
    available = int(cumulative[-1]) if len(members) else 0
    if budget > available:
        raise DataContractError(f"{label}: budget of {int(budget)} tokens exceeds the {available} tokens "
                                f"of the eligible rows")
    return members[: int(np.searchsorted(cumulative, budget, side="right"))]


def selection_issues(selection: pl.DataFrame, *, method: str, **extras: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ``not_selected`` issue table and its summary: score = minus the selection score (higher = less wanted),
    ``is_not_selected_issue`` = not kept, ``not_selected_reason`` = why."""
    table = issue_table(selection["example_id"], -selection["score"].to_numpy(), issue=ISSUE,
                        flagged=~selection["keep"].to_numpy(), extras={"reason": selection["reason"]})
    return table, dataset_summary(table, issue=ISSUE, method=method, **extras)
