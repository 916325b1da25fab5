"""Tiny-GPT ground truth for provenance tests and benchmarks (methods spec §2.4, §3.4).

Builds passages from a document corpus (e.g. ``../shared/data/multidomain_corpus``), trains "Alice" in a
recorded uniformly random order, derives suspects (continued training on other text) and trains independent
null models (other seeds and orders). Everything is seeded, small and CPU-only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
from torch import nn

from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.provenance.retrain import OrderedTrainConfig, train_in_order

TINY_GPT = ByteGPTConfig(n_layer=2, n_head=2, d_model=64, block_size=64)


def passages(corpus: pl.DataFrame, *, chars: int, per_domain: int, seed: int = 0) -> pl.DataFrame:
    """Non-overlapping ``chars``-character passages, ``per_domain`` per domain at random, with a stable
    ``example_id`` and a ``pool`` (0-9) from a hash of the id for disjoint splits."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for domain in sorted(corpus["domain"].unique().to_list()):
        docs = corpus.filter(pl.col("domain") == domain)
        pieces = [
            (doc_id, i, text[i : i + chars])
            for doc_id, text in zip(docs["doc_id"].to_list(), docs["text"].to_list(), strict=True)
            for i in range(0, len(text) - chars + 1, chars)
        ]
        for j in rng.choice(len(pieces), size=min(per_domain, len(pieces)), replace=False):
            doc_id, start, text = pieces[j]
            rows.append({"example_id": f"{doc_id}@{start}", "domain": domain, "text": text})
    frame = pl.DataFrame(rows).unique("text", keep="first", maintain_order=True)
    pool = [int(hashlib.sha1(e.encode()).hexdigest(), 16) % 10 for e in frame["example_id"].to_list()]
    return frame.with_columns(pool=pl.Series(pool))


@dataclass
class Run:
    """A model trained in a recorded order: the model and ``example_id, position``."""

    model: nn.Module
    positions: pl.DataFrame


def train_run(frame: pl.DataFrame, *, seed: int, cfg: OrderedTrainConfig, gpt: ByteGPTConfig = TINY_GPT,
              adapter: ByteGPTAdapter | None = None) -> Run:
    """A fresh seeded model trained for one epoch over ``frame`` in a seeded uniformly random order."""
    import torch

    adapter = adapter or ByteGPTAdapter(gpt)
    torch.manual_seed(seed)
    model = adapter.build_model()
    order = np.random.default_rng(seed).permutation(frame.height)
    rows = frame[order]
    trained = train_in_order(adapter, model, rows, OrderedTrainConfig(**{**cfg.__dict__, "seed": seed}),
                             copy_model=False)
    positions = pl.DataFrame({"example_id": rows["example_id"], "position": np.arange(frame.height)})
    return Run(trained, positions)


def split(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training pool: hash pools 0-6, other text: pools 7-9)."""
    return frame.filter(pl.col("pool") < 7), frame.filter(pl.col("pool") >= 7)


ALICE = OrderedTrainConfig(learning_rate=3e-3, batch_size=8)  # "our run": small batches, constant rate
REFERENCE = OrderedTrainConfig(learning_rate=3e-3, batch_size=16)  # independent reference model
NULL = OrderedTrainConfig(learning_rate=3e-3, batch_size=32)  # cheap independent null models
FINETUNE = OrderedTrainConfig(learning_rate=3e-4, batch_size=8)  # derivation: continued training on other text
