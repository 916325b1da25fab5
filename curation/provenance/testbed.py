"""Tiny-GPT ground truth for provenance tests and benchmarks (methods spec §2.4, §3.4).

Builds passages from a document corpus (e.g. ``../shared/data/multidomain_corpus``), trains "Alice" in a
recorded uniformly random order, derives suspects (continued training on other text) and trains independent
null models (other seeds and orders). Everything is seeded, small and CPU-only. ``recency_bed`` and
``exchangeable_bed`` are the synthetic per-example loss tables of the ensemble-reference tests (one generator for
the tests and for benchmarks/provenance/bed_seeds.py, which measures their margins over seeds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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


def recency_bed(seed: int, n: int, *, bank: int = 9, noise: float = 0.3, imprint: float = 0.15
                ) -> tuple[pl.DataFrame, pl.DataFrame, list[pl.DataFrame], pl.DataFrame]:
    """``(positions, reference, bank, suspect)`` loss tables of ``n`` examples: every model = a shared difficulty
    + its own per-example noise (sd ``noise``); the suspect also remembers late examples (``imprint * position/n``
    less loss)."""
    rng = np.random.default_rng(seed)
    ids, position = np.arange(n), rng.permutation(n)
    difficulty = rng.normal(3.0, 1.0, size=n)

    def model(own: float = 0.0) -> pl.DataFrame:
        return pl.DataFrame({"example_id": ids, "loss": difficulty + rng.normal(0, noise, size=n) - own * position / n})

    positions = pl.DataFrame({"example_id": ids, "position": position})
    reference, others, suspect = model(), [model() for _ in range(bank)], model(own=imprint)
    return positions, reference, others, suspect


def exchangeable_bed(seed: int, n: int = 300, n_models: int = 10, noise: float = 0.3
                     ) -> tuple[list[pl.DataFrame], Iterator[pl.DataFrame]]:
    """``n_models`` exchangeable loss tables (shared difficulty + own noise, no recency imprint) and an endless
    stream of uniformly random training orders from the same generator."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    difficulty = rng.normal(size=n)
    models = [pl.DataFrame({"example_id": ids, "loss": difficulty + rng.normal(0, noise, size=n)})
              for _ in range(n_models)]

    def orders() -> Iterator[pl.DataFrame]:
        while True:
            yield pl.DataFrame({"example_id": ids, "position": rng.permutation(n)})

    return models, orders()
