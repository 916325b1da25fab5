"""Run the palimpsest query test for several suspect models against one reference and one training run.

A suspect or reference is a checkpoint path or a ``models:/name/version`` URI (fetched from the MLflow registry
through ``curation.tracking.registry``). An optional bank of null models (independent of our run) calibrates every
suspect's statistic for this order and reference. Results come back as polars frames; nothing is logged here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from torch import nn

from curation.errors import CurationError
from curation.models.base import ModelAdapter
from curation.models.references import load_final_model
from curation.provenance.palimpsest import CorrelationResult, example_losses, query_test
from curation.provenance.verdict import Verdict, query_verdict


def load_model(ref: str) -> tuple[ModelAdapter, nn.Module]:
    """Adapter and model behind any model reference (``curation.models.references``)."""
    return load_final_model(ref)


def expand_models(refs: Sequence[str]) -> list[str]:
    """Model references with every folder replaced by the ``*.safetensors`` checkpoints in it (sorted)."""
    out: list[str] = []
    for ref in refs:
        path = Path(ref)
        if not ref.startswith("models:/") and path.is_dir():
            found = sorted(str(p) for p in path.glob("*.safetensors"))
            if not found:
                raise CurationError(f"{ref}: folder holds no .safetensors checkpoint")
            out.extend(found)
        else:
            out.append(ref)
    return out


def slug(ref: str) -> str:
    """A file- and metric-safe short name for a suspect reference."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref.removeprefix("models:/").removesuffix(".safetensors")).strip("_")


@dataclass
class SuspectResult:
    """One suspect's query-test result and the per-example losses behind it."""

    suspect: str
    result: CorrelationResult

    @property
    def verdict(self) -> Verdict:
        """Plain-word verdict and power statement (``curation.provenance.verdict``)."""
        r, null = self.result, self.result.null
        if null is None:
            return query_verdict(r.statistic, r.p_value, r.n)
        return query_verdict(r.statistic, r.p_value, r.n, null_z=null.z, null_p_t=null.p_t,
                             n_null=len(null.null_statistics))


def query_suspects(
    train: pl.DataFrame,
    positions: pl.DataFrame,
    reference: str,
    suspects: list[str],
    *,
    null_models: Sequence[str] = (),
    ensemble_reference: bool = False,
    n_permutations: int = 999,
    seed: int = 0,
    batch_size: int = 64,
) -> list[SuspectResult]:
    """Score ``train`` rows with the reference and every suspect; one query test per suspect, calibrated against
    ``null_models`` (checkpoints, ``models:/`` URIs or folders of checkpoints; at least two, or none). With
    ``ensemble_reference`` the reference loss is the mean over the suspect, the reference and the bank
    (``query_test``)."""
    if not suspects:
        raise CurationError("provenance: no suspects given")
    null_models = expand_models(null_models)
    if len(null_models) == 1:
        raise CurationError(f"provenance: a null bank needs at least 2 models, got 1 ({null_models[0]})")
    shared = [s for s in suspects if s in null_models]
    if shared:
        raise CurationError(f"provenance: {shared[0]} is both a suspect and in the null bank")
    train = train.join(positions.select("example_id"), on="example_id", how="semi")
    if train.height == 0:
        raise CurationError("provenance: no training row has a recorded position (example_id mismatch?)")
    ref_adapter, ref_model = load_model(reference)
    ref_loss = example_losses(ref_adapter, ref_model, train, batch_size=batch_size)
    null_losses = [example_losses(*load_model(ref), train, batch_size=batch_size) for ref in null_models]
    out = []
    for suspect in suspects:
        adapter, model = load_model(suspect)
        loss = example_losses(adapter, model, train, batch_size=batch_size)
        out.append(SuspectResult(suspect, query_test(positions, loss, ref_loss, null_losses=null_losses,
                                                     ensemble_reference=ensemble_reference,
                                                     n_permutations=n_permutations, seed=seed)))
    return out


def summary_frame(results: list[SuspectResult]) -> pl.DataFrame:
    """One row per suspect: verdict, statistic, p-values, z, n, and the sizes a decisive test would need."""
    return pl.DataFrame([{"suspect": r.suspect, "verdict": r.verdict.verdict, **r.result.summary(),
                          "p_verdict": r.verdict.p_verdict, "n_needed": r.verdict.n_needed,
                          "bank_needed": r.verdict.bank_needed} for r in results])


def binned_by_position(frame: pl.DataFrame, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``value`` (suspect - reference loss) in ``bins`` equal-count position bins (for the report plot)."""
    ordered = frame.sort("position")
    chunks = np.array_split(np.arange(ordered.height), min(bins, ordered.height))
    pos = ordered["position"].to_numpy()
    val = ordered["value"].to_numpy()
    return np.array([pos[c].mean() for c in chunks]), np.array([val[c].mean() for c in chunks])
