"""Strict config loading: unknown keys, types, nesting, validation, hashing, help."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from curation.config import config_hash, explain, load
from curation.config.stages import TrainLMConfig, ValidateDataConfig
from curation.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Inner:
    rate: float = field(default=0.1, metadata={"help": "a rate"})


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = field(metadata={"help": "required name"})
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")


def test_nested_values_are_coerced() -> None:
    cfg = load(Outer, {"name": "x", "sizes": [3, 4], "inner": {"rate": 1}})
    assert cfg.sizes == (3, 4) and cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"name": "x", "szies": [1]}, "params.yaml:s: unknown key 'szies'; did you mean 'sizes'? (valid: inner, mode, name, sizes)"),
        ({"name": "x", "inner": {"rat": 1}}, "params.yaml:s.inner: unknown key 'rat'; did you mean 'rate'? (valid: rate)"),
        ({"name": "x", "mode": "c"}, "params.yaml:s.mode: 'c' is not one of 'a', 'b'"),
        ({"name": "x", "sizes": ["a"]}, "params.yaml:s.sizes[0]: expected an integer, got 'a'"),
        ({"name": 3}, "params.yaml:s.name: expected a string, got 3"),
        ({}, "params.yaml:s: missing required key 'name' (required name)"),
        ({"name": ""}, "params.yaml:s: name must not be empty"),
    ],
)
def test_bad_mappings_give_one_line_errors(mapping: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(Outer, mapping, where="params.yaml:s")
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_hash_is_stable_and_sensitive() -> None:
    a = load(Outer, {"name": "x"})
    assert config_hash(a) == config_hash(load(Outer, {"name": "x", "sizes": [1, 2]}))
    assert config_hash(a) != config_hash(load(Outer, {"name": "y"}))
    assert len(config_hash(a)) == 12


def test_explain_lists_every_field_with_help() -> None:
    rows = {key: help_text for key, _, help_text in explain(TrainLMConfig)}
    assert rows["model.n_layer"] == "number of transformer blocks"
    assert rows["train.learning_rate"] == "peak learning rate"
    assert all(rows.values()), [k for k, v in rows.items() if not v]


def test_stage_config_validation() -> None:
    with pytest.raises(ConfigError, match="tables must list at least one table"):
        load(ValidateDataConfig, {"tables": []}, where="p")
    with pytest.raises(ConfigError, match=r"p.tables\[0\]: contract 'image' is not one of text, features"):
        load(ValidateDataConfig, {"tables": [{"path": "x.parquet", "contract": "image"}]}, where="p")


def test_read_yaml_mapping_errors_name_the_file(tmp_path) -> None:
    from curation.config import read_yaml_mapping

    assert read_yaml_mapping(None) == {}
    good = tmp_path / "o.yaml"
    good.write_text("steps: 3\n")
    assert read_yaml_mapping(str(good)) == {"steps": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: cannot read YAML"):
        read_yaml_mapping(str(bad))
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping at the top level, got list"):
        read_yaml_mapping(str(listing))
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read YAML"):
        read_yaml_mapping(str(tmp_path / "missing.yaml"))
