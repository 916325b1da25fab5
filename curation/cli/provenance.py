"""``curate provenance``: palimpsest query test of suspect models against one of our training runs."""

from __future__ import annotations

import click


@click.command("provenance")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Our training table (example_id, text).")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Our run's folder holding positions.parquet (the recorded random training order).")
@click.option("--reference", required=True, help="Independent reference model: checkpoint or models:/name/version.")
@click.option("--suspect", "suspects", required=True, multiple=True,
              help="Suspect model: checkpoint or models:/name/version (repeatable).")
@click.option("--permutations", default=999, show_default=True, help="Permutations for the exact p-value.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the results table here (Parquet).")
def provenance_cmd(train_path: str, run_dir: str, reference: str, suspects: tuple[str, ...], permutations: int,
                   out_path: str | None) -> None:
    """Test whether each SUSPECT derives from our run: Spearman rho between training position and
    (suspect loss - reference loss), with scipy's one-sided p-value and an exact permutation p-value.

    A derived model remembers late-seen examples better (rho < 0, small p); an independent model gives a
    uniformly distributed p. The stage `test_provenance` does the same with an MLflow run and model-version tags.

    \b
    Example:
      curate provenance --train data/corpus/train.parquet --run checkpoints/lm \\
        --reference checkpoints/provenance/reference.safetensors \\
        --suspect checkpoints/provenance/derived.safetensors --suspect models:/curation-demo-lm/latest
    """
    from curation.io import read_table, write_parquet
    from curation.provenance.palimpsest import check_positions
    from curation.provenance.suspects import query_suspects, summary_frame
    from curation.training.outputs import POSITIONS, read_positions

    positions = check_positions(read_positions(run_dir), where=f"{run_dir}/{POSITIONS}")
    train = read_table(train_path, columns=["example_id", "text"])
    table = summary_frame(query_suspects(train, positions, reference, list(suspects), n_permutations=permutations))
    for row in table.iter_rows(named=True):
        click.echo(f"{row['suspect']}: rho={row['statistic']:+.4f}  p={row['p_value']:.3g}  "
                   f"p_perm={row['p_permutation']:.3g}  n={row['n']}")
    if out_path:
        write_parquet(table, out_path)
