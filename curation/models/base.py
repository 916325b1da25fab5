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
AdapterKind = Literal["classifier", "causal_lm", "tree"]
ADAPTER_KINDS: tuple[str, ...] = ("classifier", "causal_lm", "tree")


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


@runtime_checkable
class TreeModelAdapter(Protocol):
    """A gradient-boosted tree model over table rows (kind ``tree``; no torch module, no batches).

    Tree influence methods (``curation.tree_scorers``) read the fitted model only through its leaf information
    (``ensemble``: a ``curation.gbdt.ensemble.TreeEnsemble``); ``fit``/``save``/``load`` keep the model in the
    library's own safe format (LightGBM: its text model format) with the table encoding beside it.
    """

    name: ClassVar[str]
    kind: ClassVar[AdapterKind]
    config_cls: ClassVar[type]
    config: Any

    def fit(self, frame: pl.DataFrame) -> Any:
        """A model fitted on every row of ``frame``."""

    def save(self, model: Any, folder: str | os.PathLike[str]) -> Any:
        """Write the model and its table encoding under ``folder``."""

    def load(self, folder: str | os.PathLike[str]) -> Any:
        """Read a model written by ``save``."""

    def features(self, model: Any, frame: pl.DataFrame, *, where: str = "table") -> Any:
        """Feature matrix of ``frame`` in the model's encoding."""

    def labels(self, model: Any, frame: pl.DataFrame, *, where: str = "table") -> Any:
        """Labels of ``frame`` as floats."""

    def ensemble(self, model: Any, train: pl.DataFrame) -> Any:
        """Leaf values, learning rate, L2 regulariser and leaf membership (a ``TreeEnsemble``)."""


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


def load_adapter_model(
    path: str | os.PathLike[str], *, plain: tuple[str, dict[str, Any], float] | None = None
) -> tuple[ModelAdapter, nn.Module, float]:
    """Rebuild adapter and model from a checkpoint file; returns ``(adapter, model, learning_rate)``.

    Self-describing checkpoints (written by ``curation.training``) name their adapter, model config and learning
    rate. A plain state dict needs ``plain = (adapter name, model options, learning rate)``. The weights must be
    finite and match the model's tensors name by name and shape by shape; any mismatch is one line naming the file
    and the tensor. Resolve references (folders, ``models:/`` URIs) with ``curation.models.references`` first.
    """
    from curation.plugins import get_plugin

    state, info = load_checkpoint(path)
    if info is not None:
        adapter_name, options, learning_rate = info.adapter, info.model_config, info.learning_rate
        where = f"{path}:model_config"
    elif plain is not None:
        adapter_name, options, learning_rate = plain
        where = f"{path}: --model-option"
    else:
        raise CurationError(
            f"{path}: a plain state dict without adapter metadata; name its model with --adapter (and "
            f"--model-option, --lr), or save it with curation.models.save_checkpoint"
        )
    adapter_cls = get_plugin("curation.model_adapters", adapter_name)
    adapter = adapter_cls(load_config(adapter_cls.config_cls, options, where=where))
    model = adapter.build_model()
    check_state_dict(path, state, model)
    model.load_state_dict(state)
    model.eval()
    return adapter, model, learning_rate


def check_state_dict(path: str | os.PathLike[str], state: dict[str, torch.Tensor], model: nn.Module) -> None:
    """One-line errors for weights that cannot be this model's: missing, unexpected, misshapen or non-finite."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise CurationError(f"{path}: tensor '{missing[0]}' is missing ({len(missing)} of {len(expected)} missing); "
                            f"the checkpoint was saved from another model")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise CurationError(f"{path}: unexpected tensor '{unexpected[0]}' ({len(unexpected)} not in the model)")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CurationError(f"{path}: tensor '{name}' has shape {list(tensor.shape)}, the model expects "
                                f"{list(expected[name].shape)} (does the model config match the table?)")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CurationError(f"{path}: tensor '{name}' holds NaN or infinite weights")
