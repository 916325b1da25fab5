"""SelfInfluenceSelector flags/drops exactly the top fraction; write_filtered keeps the schema and audits counts."""

import json

import polars as pl
import pytest

from curation.errors import DataContractError
from curation.plugins import get_plugin
from curation.selection import SelfInfluenceSelector, SelfInfluenceSelectorConfig, write_filtered

SCORES = pl.DataFrame({"example_id": ["a", "b", "c", "d", "e"], "score": [0.5, 3.0, 1.0, 3.0, -2.0]})


def test_drop_top_fraction_with_deterministic_ties() -> None:
    out = SelfInfluenceSelector(SelfInfluenceSelectorConfig(fraction=0.4, action="drop")).select(SCORES)
    assert out["example_id"].to_list() == ["a", "b", "c", "d", "e"]  # input order
    assert out["keep"].to_list() == [True, False, True, False, True]
    assert out["reason"].to_list() == ["kept", "high_self_influence", "kept", "high_self_influence", "kept"]
    assert out["rank"].to_list() == [4, 1, 3, 2, 5]  # tie between b and d broken by table order


def test_flag_keeps_everything_but_annotates() -> None:
    out = SelfInfluenceSelector(SelfInfluenceSelectorConfig(fraction=0.2, action="flag")).select(SCORES)
    assert out["keep"].all()
    assert out.filter(pl.col("reason") == "high_self_influence")["example_id"].to_list() == ["b"]


def test_bad_scores_are_refused() -> None:
    with pytest.raises(DataContractError, match="row 1: score is null or not finite"):
        SelfInfluenceSelector().select(pl.DataFrame({"example_id": [1, 2], "score": [1.0, float("nan")]}))
    with pytest.raises(DataContractError, match="missing column 'score'"):
        SelfInfluenceSelector().select(pl.DataFrame({"example_id": [1]}))
    with pytest.raises(ValueError):
        SelfInfluenceSelectorConfig(fraction=1.5)


def test_write_filtered_keeps_schema_and_writes_manifest(tmp_path) -> None:
    src = tmp_path / "train.parquet"
    table = pl.DataFrame({"example_id": ["a", "b", "c", "d", "e"], "features": [[float(i)] * 2 for i in range(5)],
                          "label": [0, 1, 0, 1, 2]})
    table.write_parquet(src)
    cfg = SelfInfluenceSelectorConfig(fraction=0.4)
    selection = SelfInfluenceSelector(cfg).select(SCORES)
    manifest = write_filtered(src, selection, tmp_path / "out", selector="self_influence", config=cfg)
    filtered = pl.read_parquet(tmp_path / "out" / "filtered.parquet")
    assert filtered.schema == table.schema
    assert filtered["example_id"].to_list() == ["a", "c", "e"]
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["kept"] == 3 and manifest["dropped"] == 2
    assert manifest["dropped_by_reason"] == {"high_self_influence": 2}
    assert len(manifest["source_digest"]) == 16 and len(manifest["config_hash"]) == 12


def test_selection_must_cover_every_row(tmp_path) -> None:
    src = tmp_path / "t.parquet"
    pl.DataFrame({"example_id": ["a", "zz"], "label": [0, 1]}).write_parquet(src)
    with pytest.raises(DataContractError, match="row 1: example_id 'zz' has no selection decision"):
        write_filtered(src, SelfInfluenceSelector().select(SCORES), tmp_path / "o", selector="s", config=None)


def test_registered_as_plugin() -> None:
    assert get_plugin("curation.selectors", "self_influence") is SelfInfluenceSelector
