"""Which registered model version a local checkpoint is: a ``registered.json`` sidecar beside the checkpoint.

Stages that register a checkpoint record the ``models:/name/version`` URI next to it, so later stages that only
know the checkpoint path (label-error detection, unlearning verification) can put their verdicts on that model
version in the registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from curation.io import write_json

REGISTERED_SIDECAR = "registered.json"
MODEL_URI_ENV = "CURATION_MODEL_URI"  # set by a webhook job for the model version it was triggered by


def write_registered(checkpoint: str | Path, uri: str) -> Path:
    """Record the registry URI of ``checkpoint`` beside it."""
    return write_json({"uri": uri, "checkpoint": Path(checkpoint).name}, Path(checkpoint).parent / REGISTERED_SIDECAR)


def registered_uri(checkpoint: str | Path) -> str | None:
    """The ``models:/`` URI recorded beside ``checkpoint`` (None when that exact file was not registered).

    ``checkpoint`` may itself be a ``models:/`` URI (returned unchanged) or a training output folder, in which
    case its last checkpoint is meant.
    """
    ref = str(checkpoint)
    if ref.startswith("models:/"):
        return ref
    path = Path(ref)
    if path.is_dir():
        from curation.training.outputs import MANIFEST, read_manifest

        if not (path / MANIFEST).exists():
            return None
        path = Path(read_manifest(path)[-1]["path"])
    sidecar = path.parent / REGISTERED_SIDECAR
    if not sidecar.exists():
        return None
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    return data["uri"] if data.get("checkpoint") == path.name else None


def examined_model_uri(registered_names: tuple[str, ...] | list[str] = ()) -> str | None:
    """The ``models:/name/version`` a webhook job was started for (``CURATION_MODEL_URI``), or None outside such
    a job -- or when ``registered_names`` is given and the version belongs to another registered model, so a
    stage only examines the models it is configured for."""
    uri = os.environ.get(MODEL_URI_ENV, "").strip()
    if not uri.startswith("models:/"):
        return None
    rest = uri.removeprefix("models:/")
    name = rest.partition("@")[0] if "@" in rest else rest.rpartition("/")[0]
    if registered_names and name not in registered_names:
        return None
    return uri
