"""The ``tree`` block of the ``score_influence`` and ``detect_label_errors`` stages: score a boosted-tree model
(a ``curate train --model lightgbm`` folder or a ``models:/`` URI) instead of the neural checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class TreeInfluenceConfig:
    """Which tree model, tables and tree influence method a stage uses; ``model`` empty = the neural path."""

    model: str = field(default="", metadata={"help": "tree model folder or models:/ URI; empty = not a tree stage"})
    train: str = field(default="", metadata={"help": "the table the model was fitted on (every row)"})
    queries: str = field(default="", metadata={"help": "query table (score_influence); empty = the first train row"})
    method: str = field(default="boostin", metadata={"help": "boostin, trex or leaf_influence"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the method's options"})

    def __post_init__(self) -> None:
        if self.model and not self.train:
            raise ValueError("tree.train must name the table the tree model was fitted on")
