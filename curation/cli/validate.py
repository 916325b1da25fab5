"""``curate validate``: check a table against a data contract."""

from __future__ import annotations

import click


@click.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--contract", type=click.Choice(["text", "features"]), default="text", show_default=True,
              help="Which data contract the table must satisfy.")
@click.option("--n-classes", type=click.IntRange(min=2), default=None, help="Labels must lie in 0..N-1.")
def validate_cmd(path: str, contract: str, n_classes: int | None) -> None:
    """Validate a Parquet / JSONL / CSV table against a data contract (Great Expectations).

    Prints a one-line error naming the file, column and first bad row and exits 2 when the table is invalid.

    \b
    Example:
      curate validate data/train.parquet --contract features --n-classes 10
    """
    from curation.validation import CONTRACTS, validate_table

    label_range = (0, n_classes - 1) if n_classes else None
    _, report = validate_table(path, CONTRACTS[contract], label_range=label_range)
    stats = report.statistics
    click.echo(f"{path}: OK ({report.rows} rows, {stats.get('successful_expectations')}/"
               f"{stats.get('evaluated_expectations')} expectations passed)")
