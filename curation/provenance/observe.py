"""Observational provenance tests on suspect *texts* (no access to the suspect model), as one product entry point.

``observe_texts`` runs, for every suspect text, test (a) span overlap (cheap: an n-gram index of our training
table) and, when configured, test (b) retraining of our run's last phase on K reshuffled orders (the retrained
models are built once and shared by all texts). Results are one polars row per (text, method) with the
statistic, the p-value that is reported and what kind it is, the other p-values, the amount of text used, and the
plain-word verdict with the size that would make it decisive (``curation.provenance.verdict.text_verdict``).

Suspect text files: ``.txt`` (the whole file is one text) or a Parquet / JSONL / CSV table with a ``text`` column
(one sample per row) and optionally ``prompt`` (then test (b) scores only the completion, in the prompt's context).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
from torch import nn

from curation.errors import CurationError
from curation.io import read_table
from curation.models.base import ModelAdapter
from curation.provenance.config import ObserveConfig
from curation.provenance.generate import matched_samples
from curation.provenance.palimpsest import (
    SimulatedDerivation,
    last_phase,
    model_statistic,
    order_test,
    retrain_logliks,
    span_overlap_test,
)
from curation.provenance.verdict import text_verdict

SCHEMA = {"text_file": pl.String, "method": pl.String, "statistic": pl.Float64, "p_value": pl.Float64,
          "p_value_kind": pl.String, "p_normal": pl.Float64, "p_t": pl.Float64, "p_rank": pl.Float64,
          "n_tokens": pl.Int64, "n_samples": pl.Int64, "n_reshuffles": pl.Int64, "verdict": pl.String,
          "p_verdict": pl.Float64, "tokens_needed": pl.Float64, "reshuffles_needed": pl.Float64}


def read_suspect_texts(path: str | Path) -> pl.DataFrame:
    """``example_id, text`` (and ``prompt`` if present) from a ``.txt`` file or a table, or a ``CurationError``."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.exists():
            raise CurationError(f"{path}: file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CurationError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        if not text.strip():
            raise CurationError(f"{path}: file is empty")
        return pl.DataFrame({"example_id": [0], "text": [text]})
    frame = read_table(path)
    if "text" not in frame.columns:
        raise CurationError(f"{path}: missing column 'text'")
    for col in ("text", "prompt"):
        if col in frame.columns and frame[col].null_count():
            raise CurationError(f"{path}: column '{col}' is null at row {frame[col].is_null().arg_true()[0]}")
    keep = ["text"] + (["prompt"] if "prompt" in frame.columns else [])
    return frame.select(keep).with_row_index("example_id").with_columns(pl.col("example_id").cast(pl.Int64))


@dataclass
class BoundaryRun:
    """What test (b) needs from our run: the model at the last-phase boundary, the phase in original order and
    the simulated derivation every retrained model gets (if any)."""

    adapter: ModelAdapter
    boundary: nn.Module
    phase: pl.DataFrame
    derivation: SimulatedDerivation | None = None


def span_row(name: str, train: pl.DataFrame, positions: pl.DataFrame, texts: pl.DataFrame,
             cfg: ObserveConfig) -> dict:
    """Test (a) for one suspect text as a result row (p-value: scipy's one-sided Spearman t approximation; a text
    sharing no span with our training data gives rho 0, p 1)."""
    res = span_overlap_test(train, positions, texts["text"].to_list(), n=cfg.span_chars,
                            n_permutations=cfg.span_permutations, seed=cfg.seed, allow_no_match=True)
    return {"text_file": name, "method": "overlap", "statistic": res.statistic, "p_value": res.p_value,
            "p_value_kind": "spearman_t", "p_normal": None, "p_t": None, "p_rank": res.p_permutation,
            "n_tokens": int(texts["text"].str.len_bytes().sum()), "n_samples": texts.height, "n_reshuffles": None}


def retrain_rows(texts: dict[str, pl.DataFrame], run: BoundaryRun, cfg: ObserveConfig) -> list[dict]:
    """Test (b) for every suspect text; the K+1 retrained models are trained once and score all texts."""
    names = list(texts)
    frames = [texts[n] for n in names]
    if cfg.control == "boundary_samples":
        frames += [matched_samples(run.adapter, run.boundary, texts[n], seed=cfg.seed) for n in names]
    lls, n_tokens = retrain_logliks(run.adapter, run.boundary, run.phase, frames, cfg.retrain_train,
                                    n_reshuffles=cfg.n_reshuffles, seed=cfg.seed, derivation=run.derivation)
    rows = []
    for i, name in enumerate(names):
        control = lls[len(names) + i] if cfg.control == "boundary_samples" else None
        res = order_test(model_statistic(lls[i], aggregate=cfg.statistic, control=control), n_tokens[i],
                         cfg.statistic + ("+control" if control is not None else ""))
        rows.append({"text_file": name, "method": "retrain", "statistic": res.z, "p_value": res.reported(cfg.report_p),
                     "p_value_kind": cfg.report_p, "p_normal": res.p_normal, "p_t": res.p_t, "p_rank": res.p_rank,
                     "n_tokens": res.n_tokens, "n_samples": texts[name].height,
                     "n_reshuffles": len(res.reshuffled_loglik)})
    return rows


def observe_texts(
    texts: dict[str, pl.DataFrame],
    train: pl.DataFrame,
    positions: pl.DataFrame,
    cfg: ObserveConfig,
    run: BoundaryRun | None = None,
) -> pl.DataFrame:
    """Run the configured observational tests on every suspect text (name -> frame); one row per (text, method).

    Test (a) ``overlap`` reports scipy's one-sided Spearman p-value (``p_rank`` holds the permutation p-value);
    test (b) ``retrain`` needs ``run`` and reports the p-value kind ``cfg.report_p``.
    """
    if not texts:
        raise CurationError("provenance observe: no suspect texts given")
    rows = []
    if "overlap" in cfg.methods:
        rows += [span_row(name, train, positions, frame, cfg) for name, frame in texts.items()]
    if "retrain" in cfg.methods:
        if run is None:
            raise CurationError("provenance observe: method 'retrain' needs a boundary checkpoint of our run")
        rows += retrain_rows(texts, run, cfg)
    for row in rows:
        v = text_verdict(row)
        row.update(verdict=v.verdict, p_verdict=v.p_verdict, tokens_needed=v.tokens_needed,
                   reshuffles_needed=v.reshuffles_needed)
    return pl.DataFrame(rows, schema=SCHEMA)


def boundary_run(train: pl.DataFrame, positions: pl.DataFrame, cfg: ObserveConfig) -> BoundaryRun:
    """Load our run's boundary checkpoint (path or ``models:/`` URI), the last ``cfg.fraction`` of its order and
    the simulated derivation's rows."""
    from curation.provenance.suspects import load_model

    adapter, model = load_model(boundary_checkpoint(cfg.boundary, cfg.fraction))
    return BoundaryRun(adapter, model, last_phase(train, positions, cfg.fraction), simulated_derivation(cfg))


def simulated_derivation(cfg: ObserveConfig) -> SimulatedDerivation | None:
    """The configured simulated derivation: rows ``offset .. offset + rows`` of its data, or ``None``."""
    sim = cfg.simulate_derivation
    if not sim.data:
        return None
    frame = read_table(sim.data)
    if "text" not in frame.columns:
        raise CurationError(f"{sim.data}: missing column 'text'")
    rows = frame.slice(sim.offset, sim.rows)
    if rows.height < sim.rows:
        raise CurationError(f"{sim.data}: simulated derivation needs rows {sim.offset}-{sim.offset + sim.rows - 1}, "
                            f"the table has {frame.height}")
    if rows["text"].null_count():
        raise CurationError(f"{sim.data}: column 'text' is null at row {sim.offset + rows['text'].is_null().arg_true()[0]}")
    return SimulatedDerivation(rows.select(pl.int_range(pl.len()).alias("example_id"), "text"), sim.train)


def boundary_checkpoint(boundary: str, fraction: float) -> str:
    """``boundary`` itself, or for a training output folder its last checkpoint taken no later than the start of
    the last ``fraction`` of the run (by step, rounded to the nearest step as the trainer places its checkpoints),
    so params need not name a file whose step depends on the data."""
    path = Path(boundary)
    if boundary.startswith("models:/") or not path.is_dir():
        return boundary
    from curation.training.outputs import MANIFEST, read_manifest

    if not (path / MANIFEST).exists():
        raise CurationError(f"{path}: boundary folder has no {MANIFEST}; name a checkpoint file instead")
    checkpoints = read_manifest(path)
    cutoff = round((1.0 - fraction) * checkpoints[-1]["step"])
    before = [c for c in checkpoints if c["step"] <= cutoff]
    if not before:
        raise CurationError(f"{path}: no checkpoint at or before step {cutoff} (the start of the last "
                            f"{fraction:.0%} of the run)")
    return before[-1]["path"]


def observe_files(paths: list[str], train: pl.DataFrame, positions: pl.DataFrame, cfg: ObserveConfig) -> pl.DataFrame:
    """Read every suspect text file and run the configured observational tests (see ``observe_texts``)."""
    texts = {str(p): read_suspect_texts(p) for p in paths}
    if len(texts) != len(paths):
        raise CurationError("provenance observe: a suspect text file is listed twice")
    run = boundary_run(train, positions, cfg) if "retrain" in cfg.methods else None
    return observe_texts(texts, train, positions, cfg, run)
