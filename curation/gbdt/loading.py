"""Load a saved tree model, from a folder (``model.txt`` + ``tree_model.json``) or from the MLflow registry
(``models:/name/version``, ``runs:/...``), with the adapter that knows how to score it."""

from __future__ import annotations

from typing import Any

from curation.config import load
from curation.gbdt.adapter import read_sidecar


def adapter_from_sidecar(sidecar: dict[str, Any], *, where: str) -> Any:
    """The registered tree adapter named in a sidecar, with its stored config."""
    from curation.models.base import require_kind
    from curation.plugins import get_plugin

    adapter_cls = get_plugin("curation.model_adapters", sidecar["adapter"])
    adapter = adapter_cls(load(adapter_cls.config_cls, sidecar["config"], where=f"{where}:config"))
    return require_kind(adapter, "tree", what="tree influence")


def load_tree_model(source: str) -> tuple[Any, Any]:
    """``(adapter, TreeModel)`` from a model folder or a ``models:/`` / ``runs:/`` URI."""
    if source.startswith(("models:/", "runs:/")):
        from curation.gbdt.adapter import TreeModel
        from curation.gbdt.encoding import TableEncoding
        from curation.tracking.registry import fetch_tree_model

        booster, sidecar = fetch_tree_model(source)
        return adapter_from_sidecar(sidecar, where=source), TreeModel(booster, TableEncoding.from_dict(
            sidecar["encoding"]))
    sidecar = read_sidecar(source)
    adapter = adapter_from_sidecar(sidecar, where=source)
    return adapter, adapter.load(source)
