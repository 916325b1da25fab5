"""The ``ModelAdapter`` protocol and helpers to build a model from a checkpoint.

An adapter turns table rows into tensors, computes a per-example loss and names the modules whose gradients
influence methods use. Methods never touch a model except through its adapter, so a user's own model plugs in by
writing one small class and registering it under the ``curation.model_adapters`` entry-point group.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import polars as pl
import torch
from torch import nn

from curation.config import load as load_config
from curation.config import to_dict
from curation.errors import CurationError
from curation.models.checkpoints import load_checkpoint

Batch = dict[str, torch.Tensor]
AdapterKind = Literal["classifier", "causal_lm"]
ADAPTER_KINDS: tuple[str, ...] = ("classifier", "causal_lm")


@runtime_checkable
class ModelAdapter(Protocol):
    """What the library needs to know about a model.

    ``kind`` says which sub-protocol the adapter also implements (``ClassifierAdapter`` or ``CausalLMAdapter``):
    methods that need class logits or token distributions ask for that kind with ``require_kind`` instead of
    probing the adapter for attributes, so a mismatch is one clear error and never a silent fallback.
    """

    name: ClassVar[str]
    kind: ClassVar[AdapterKind]
    config_cls: ClassVar[type]
    config: Any

    def build_model(self) -> nn.Module:
        """A freshly initialised model (seeded by the caller)."""

    def collate(self, frame: pl.DataFrame) -> Batch:
        """Tensors for a slice of table rows (in row order)."""

    def example_losses(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example training loss, shape ``[batch]`` (no reduction)."""

    def measurement(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example query measurement (loss-like: lower is better), shape ``[batch]``."""

    def tracked_modules(self, model: nn.Module) -> list[str]:
        """Names of the modules whose parameters gradient-based methods use."""


@runtime_checkable
class ClassifierAdapter(ModelAdapter, Protocol):
    """A model over feature rows with class logits; batches carry ``x`` and, when labelled, ``y``."""

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Class logits ``[batch, n_classes]``."""


@runtime_checkable
class CausalLMAdapter(ModelAdapter, Protocol):
    """A next-token model over text rows; batches carry ``input_ids``, ``targets`` and ``target_mask``."""

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Next-token logits ``[batch, time, vocab]``."""

    def token_logprobs(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log-probability of each target token ``[batch, time]`` (zero where masked)."""

    def token_distributions(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log of the full next-token distribution ``[batch, time, vocab]`` in float64."""

    def input_embeddings(self, model: nn.Module) -> torch.Tensor:
        """The token embedding matrix ``[vocab, d_model]`` (REMIND perturbs tokens to their neighbours in it)."""


A = TypeVar("A")


def require_kind(adapter: ModelAdapter, kind: AdapterKind, *, what: str) -> Any:
    """``adapter`` if it is a ``kind`` adapter, else a one-line error saying that ``what`` needs that kind."""
    actual = getattr(type(adapter), "kind", None)
    if actual != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise CurationError(
            f"{what} needs {article} {kind} adapter; '{getattr(adapter, 'name', type(adapter).__name__)}' "
            f"is {actual or 'an adapter without a kind'}"
        )
    return adapter


def adapter_model_config(adapter: ModelAdapter) -> dict[str, Any]:
    """The adapter's config as a plain dict (stored inside checkpoints)."""
    return to_dict(adapter.config)


def load_adapter_model(path: str | os.PathLike[str]) -> tuple[ModelAdapter, nn.Module, float]:
    """Rebuild adapter and model from a self-describing checkpoint; returns ``(adapter, model, learning_rate)``."""
    from curation.plugins import get_plugin

    state, info = load_checkpoint(path)
    if info is None:
        raise CurationError(f"{path}: checkpoint has no adapter metadata; load it through its adapter explicitly")
    adapter_cls = get_plugin("curation.model_adapters", info.adapter)
    adapter = adapter_cls(load_config(adapter_cls.config_cls, info.model_config, where=f"{path}:model_config"))
    model = adapter.build_model()
    model.load_state_dict(state)
    model.eval()
    return adapter, model, info.learning_rate
