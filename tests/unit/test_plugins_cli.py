"""Plugin registry behaviour and the CLI surface (every command has --help with an example)."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from curation.cli import COMMANDS, cli
from curation.errors import PluginError
from curation.plugins import get_plugin, list_plugins


def test_builtin_adapters_registered() -> None:
    names = {e.name for e in list_plugins("curation.model_adapters")}
    assert {"byte_gpt", "mlp", "logistic"} <= names
    assert get_plugin("curation.model_adapters", "mlp").name == "mlp"
    with pytest.raises(PluginError, match="no plugin 'mpl' in curation.model_adapters; did you mean 'mlp'"):
        get_plugin("curation.model_adapters", "mpl")


def _all_commands() -> list[list[str]]:
    out = []
    for name in COMMANDS:
        cmd = cli.get_command(None, name.replace("_", "-"))
        out.append([name.replace("_", "-")])
        for sub in getattr(cmd, "commands", {}):
            out.append([name.replace("_", "-"), sub])
    return out


@pytest.mark.parametrize("argv", _all_commands(), ids=lambda a: " ".join(a))
def test_every_command_has_help_with_example(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_init_adds_missing_blocks_and_keeps_existing(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("# my pipeline\nstages:\n  train:\n    cmd: python train.py\n")
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.1  # tuned\n")
    result = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    dvc = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    assert dvc["stages"]["train"] == {"cmd": "python train.py"}
    assert dvc["stages"]["validate_data"]["cmd"] == "python -m curation.stages.validate_data"
    assert "# tuned" in (tmp_path / "params.yaml").read_text()
    assert "# my pipeline" in (tmp_path / "dvc.yaml").read_text()
    again = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert "(none; all present)" in again.output


def test_config_check_reports_unknown_key(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train_lm:\n  model:\n    n_layers: 2\n")
    result = CliRunner().invoke(cli, ["config", "check", str(tmp_path / "params.yaml")])
    assert result.exit_code != 0
    assert "unknown key 'n_layers'; did you mean 'n_layer'?" in str(result.exception)
