"""Stage blocks that ``curate init`` adds to a user's ``dvc.yaml`` and ``params.yaml``.

The shipped ``dvc_stages.yaml`` and ``params_blocks.yaml`` are this repository's own demo pipeline made portable
by ``portable_stages`` / ``portable_params`` (``make templates`` refreshes them; a test fails when they drift), so
``curate init && dvc repro`` in an empty repo runs a pipeline known to work, which a user then points at their own
tables. ``commented_params`` puts every key's help text (from the stage's config dataclass) beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

DEMO_ONLY_PREFIXES = ("pipelines/", "curation")  # this repo's sources: not in a user's project


def portable_stages(dvc_doc: dict[str, Any]) -> dict[str, Any]:
    """The ``stages`` of a repo's ``dvc.yaml`` as a user project gets them: commands run the installed
    ``curation.stages`` modules and dependencies on this repository's source files are dropped."""
    out: dict[str, Any] = {}
    for name, stage in dvc_doc["stages"].items():
        stage = dict(stage)
        stage["cmd"] = f"python -m curation.stages.{name}"
        deps = [d for d in stage.get("deps", []) if not str(d).startswith(DEMO_ONLY_PREFIXES)]
        if deps:
            stage["deps"] = deps
        else:
            stage.pop("deps", None)
        out[name] = stage
    return out


def portable_params(params_doc: dict[str, Any], stages: list[str]) -> dict[str, Any]:
    """The params blocks of ``stages`` (the ``schedule`` block is the user's own and is not copied)."""
    return {name: params_doc[name] for name in stages if name in params_doc}


def commented_params(blocks: Any) -> Any:
    """``blocks`` (a ruamel mapping of stage name -> params block) with each key's help text as an end-of-line
    comment, read from the stage's config dataclass (``curate config explain`` shows the same text)."""
    from curation.stages import STAGE_CONFIGS

    for stage, block in blocks.items():
        if stage in STAGE_CONFIGS:
            config_cls = STAGE_CONFIGS[stage]()
            blocks.yaml_set_comment_before_after_key(stage, before=(config_cls.__doc__ or "").strip().splitlines()[0])
            _comment_block(block, config_cls)
    return blocks


def _comment_block(block: Any, config_cls: type) -> None:
    if not hasattr(block, "yaml_add_eol_comment") or block.fa.flow_style():
        return  # a comment inside a flow mapping ({a: 1, b: 2}) would end it
    hints = get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.name not in block:
            continue
        if dataclasses.is_dataclass(hints[f.name]) and hasattr(block[f.name], "yaml_add_eol_comment"):
            _comment_block(block[f.name], hints[f.name])
        elif f.metadata.get("help"):
            block.yaml_add_eol_comment(f.metadata["help"], f.name)


def refresh(dvc_yaml: str, params_yaml: str, out_dir: str) -> None:
    """Rewrite the shipped templates in ``out_dir`` from a repo's ``dvc.yaml`` and ``params.yaml``."""
    from pathlib import Path

    from ruamel.yaml import YAML

    yaml = YAML()
    stages = portable_stages(yaml.load(Path(dvc_yaml).read_text(encoding="utf-8")))
    params = portable_params(yaml.load(Path(params_yaml).read_text(encoding="utf-8")), list(stages))
    header = "# Written by `make templates` from this repository's demo pipeline; `curate init` copies it.\n"
    for name, doc in (("dvc_stages.yaml", stages), ("params_blocks.yaml", params)):
        with open(Path(out_dir) / name, "w", encoding="utf-8") as fh:
            fh.write(header)
            yaml.dump(doc, fh)
