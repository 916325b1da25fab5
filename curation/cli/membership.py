"""``curate membership``: membership-inference scores of a table's texts under a causal LM."""

from __future__ import annotations

import click


@click.command("membership")
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--model", "model_ref", required=True, help="Target model: checkpoint or models:/name/version.")
@click.option("--reference", default=None, help="Reference model for the 'reference' score (optional).")
@click.option("-k", "k", type=click.FloatRange(0, 1, min_open=True), default=0.2, show_default=True, help="Fraction of lowest tokens for Min-K% and Min-K%++.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Output Parquet: example_id + one column per score (higher = more member-like).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Rows per scoring batch.")
def membership_cmd(table: str, model_ref: str, reference: str | None, k: float, out_path: str,
                   batch_size: int) -> None:
    """Score every row of TABLE (example_id, text) with loss, zlib, Min-K% and Min-K%++ (and reference-model
    ratio when --reference is given). Higher score = more likely a training member.

    \b
    Example:
      curate membership data/corpus/val.parquet --model checkpoints/lm \\
        --reference checkpoints/provenance/reference.safetensors -k 0.2 --out scores.parquet
    """
    from curation.io import read_table, write_parquet
    from curation.models.base import require_kind
    from curation.provenance.membership import all_scores
    from curation.provenance.suspects import load_model
    from curation.validation import CONTRACTS, validate_frame

    frame = read_table(table, columns=["example_id", "text"])
    validate_frame(frame, CONTRACTS["text"], source=table)  # ids unique, no null or empty text
    adapter, model = load_model(model_ref)
    require_kind(adapter, "causal_lm", what=f"--model {model_ref}: membership scoring")
    ref_adapter, ref_model = load_model(reference) if reference else (None, None)
    scores = all_scores(adapter, model, frame, k=k, reference_model=ref_model, reference_adapter=ref_adapter,
                        batch_size=batch_size)
    write_parquet(scores, out_path)
    click.echo(f"{out_path}: {scores.height} rows, scores {', '.join(c for c in scores.columns if c != 'example_id')}")
