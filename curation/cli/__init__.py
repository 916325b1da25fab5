"""The ``curate`` command line. Each command lives in its own module under ``curation/cli/`` and is added here.

Logging handlers are configured here (never in library code); user errors print one line and exit 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from curation._internal.logging_setup import configure_logging
from curation.errors import CurationError

# module name under curation.cli -> command attribute; imported lazily so `curate --help` stays fast
COMMANDS = {
    "init": "init_cmd",
    "train": "train_cmd",
    "ui": "ui_cmd",
    "plugins": "plugins_cmd",
    "config": "config_group",
    "validate": "validate_cmd",
    "mixture": "mixture_group",
    "unlearn": "unlearn_cmd",
    "verify_unlearning": "verify_unlearning_cmd",
    "schedule": "schedule_group",
    "hooks": "hooks_group",
    "provenance": "provenance_group",
    "membership": "membership_cmd",
    "influence": "influence_cmd",
    "label_errors": "label_errors_cmd",
    "select": "select_cmd",
    "select_targeted": "select_targeted_cmd",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when listed or invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({name.replace("_", "-") for name in COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = cmd_name.replace("-", "_")
        if module_name not in COMMANDS:
            return None
        module = importlib.import_module(f"curation.cli.{module_name}")
        return getattr(module, COMMANDS[module_name])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="curation")
def cli(verbose: bool) -> None:
    """curation: which training data helped or hurt, was deleted data forgotten, is that model derived from ours,
    and which domain mixture to train on next, as DVC stages that log to MLflow.

    \b
    Example:
      curate init               # add the curation stages to ./dvc.yaml and ./params.yaml
      dvc repro                 # run them
      curate ui                 # browse the results in the MLflow UI
    """
    configure_logging(logging.DEBUG if verbose else None)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit status 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:  # bad options and arguments: the same one line as any other user error
        click.echo(f"error: {click_error_line(exc)}", err=True)
        sys.exit(2)
    except CurationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def click_error_line(exc: click.ClickException) -> str:
    """One line for a click error: the command, the message, and for an unknown option or command the valid ones."""
    from curation._internal.suggest import did_you_mean

    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    message = " ".join(exc.format_message().split())
    if isinstance(exc, click.NoSuchOption) and ctx is not None:
        valid = [o for p in ctx.command.get_params(ctx) for o in p.opts if o.startswith("-")]
        return f"{where}unknown option '{exc.option_name}'{did_you_mean(exc.option_name, valid)}"
    if ctx is not None and isinstance(ctx.command, click.Group) and message.startswith("No such command"):
        name = message.split("'")[1]
        return f"{where}unknown command '{name}'{did_you_mean(name, ctx.command.list_commands(ctx))}"
    return where + message
