"""``curate provenance``: is a model (``query``) or a body of text (``observe``) derived from one of our runs?"""

from __future__ import annotations

import click


@click.group("provenance")
def provenance_group() -> None:
    """Palimpsest provenance tests against one of our training runs (its recorded random order).

    \b
    Example:
      curate provenance query --train data/corpus/train.parquet --run checkpoints/lm \\
        --reference checkpoints/provenance/reference.safetensors --suspect models:/curation-demo-lm/latest
      curate provenance observe --text suspect.parquet --train data/corpus/train.parquet --run checkpoints/lm
    """


@provenance_group.command("query")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Our training table (example_id, text).")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Our run's folder holding positions.parquet (the recorded random training order).")
@click.option("--reference", required=True, help="Independent reference model: checkpoint or models:/name/version.")
@click.option("--suspect", "suspects", required=True, multiple=True,
              help="Suspect model: checkpoint or models:/name/version (repeatable).")
@click.option("--null-model", "null_models", multiple=True,
              help="Model independent of our run (checkpoint, models:/ URI or folder of checkpoints; repeatable, "
                   "at least 2): calibrates each suspect's rho for this order and reference.")
@click.option("--ensemble-reference/--single-reference", default=True, show_default=True,
              help="With a null bank: the reference loss is the mean over the suspect, the reference and the bank, "
                   "and the reference joins the bank (the stage's default); --single-reference: the reference alone.")
@click.option("--permutations", type=click.IntRange(min=1), default=999, show_default=True, help="Permutations for the exact p-value.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the results table here (Parquet).")
def query_cmd(train_path: str, run_dir: str, reference: str, suspects: tuple[str, ...], null_models: tuple[str, ...],
              ensemble_reference: bool, permutations: int, out_path: str | None) -> None:
    """Test whether each SUSPECT model derives from our run: Spearman rho between training position and
    (suspect loss - reference loss), with scipy's one-sided p-value and an exact permutation p-value.

    A derived model remembers late-seen examples better (rho < 0, small p); an independent model gives a
    uniformly distributed p over the randomness of our order. For our one order, models independent of it share
    structure with the reference: a bank of them (--null-model) calibrates rho for this order and reference
    (null_z, null_p_t, exact null_p_rank). The stage `test_provenance` does the same with an MLflow run and
    model-version tags.

    \b
    Example:
      curate provenance query --train data/corpus/train.parquet --run checkpoints/lm \\
        --reference checkpoints/provenance/reference.safetensors \\
        --suspect checkpoints/provenance/derived.safetensors --suspect models:/curation-demo-lm/latest \\
        --null-model checkpoints/provenance/nulls
    """
    from curation.io import read_table, write_parquet
    from curation.provenance.palimpsest import check_positions
    from curation.provenance.suspects import query_suspects, summary_frame
    from curation.training.outputs import POSITIONS, read_positions

    positions = check_positions(read_positions(run_dir), where=f"{run_dir}/{POSITIONS}")
    train = read_table(train_path, columns=["example_id", "text"])
    results = query_suspects(train, positions, reference, list(suspects), null_models=null_models,
                             ensemble_reference=ensemble_reference and bool(null_models), n_permutations=permutations)
    table = summary_frame(results)
    for result, row in zip(results, table.iter_rows(named=True), strict=True):
        bank = (f"  null_z={row['null_z']:+.2f}  null_p_t={row['null_p_t']:.3g}  null_p_rank={row['null_p_rank']:.3g}"
                f" ({row['n_null_models']} null models)") if "null_z" in row else ""
        click.echo(f"{row['suspect']}: rho={row['statistic']:+.4f}  p={row['p_value']:.3g}  "
                   f"p_perm={row['p_permutation']:.3g}  n={row['n']}{bank}")
        click.echo(f"  {result.verdict.statement}")
    if out_path:
        write_parquet(table, out_path)


@provenance_group.command("observe")
@click.option("--text", "texts", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Suspect text: .txt (one text) or a table with text[, prompt] (one sample a row). Repeatable.")
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Our training table (example_id, text).")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Our run's folder holding positions.parquet (the recorded random training order).")
@click.option("--method", "methods", multiple=True, type=click.Choice(["overlap", "retrain"]),
              default=("overlap",), show_default=True, help="Test(s) to run (repeatable).")
@click.option("--span-chars", default=16, show_default=True, help="overlap: span length in characters.")
@click.option("--boundary", default="", help="retrain: our checkpoint just before the last phase (path or models:/).")
@click.option("--fraction", default=0.1, show_default=True, help="retrain: the last fraction of the order after it.")
@click.option("--reshuffles", default=19, show_default=True, help="retrain: K reshuffled retrains.")
@click.option("--lr", default=1e-3, show_default=True, help="retrain: constant learning rate (our run's, there).")
@click.option("--batch-size", default=16, show_default=True, help="retrain: examples per step (our run's).")
@click.option("--statistic", type=click.Choice(["total", "normal_scores"]), default="total", show_default=True,
              help="retrain: total log-likelihood (spec) or summed per-sample normal scores.")
@click.option("--control", type=click.Choice(["none", "boundary_samples"]), default="none", show_default=True,
              help="retrain: regress out each model's log-likelihood of text sampled from the boundary model.")
@click.option("--report-p", type=click.Choice(["normal", "t", "rank"]), default="t", show_default=True,
              help="retrain: which p-value is printed as p (all are in --out).")
@click.option("--derive-data", default="", help="retrain: table of other text; every retrained model is first "
                                                "trained on some of its rows, as a derived suspect was (simulated "
                                                "derivation).")
@click.option("--derive-offset", default=0, show_default=True, help="retrain: first row of --derive-data used.")
@click.option("--derive-rows", default=80, show_default=True, help="retrain: rows of --derive-data used.")
@click.option("--derive-lr", default=3e-4, show_default=True, help="retrain: learning rate of the simulated derivation.")
@click.option("--derive-batch-size", default=8, show_default=True, help="retrain: batch size of the simulated derivation.")
@click.option("--seed", default=0, show_default=True, help="Seed of permutations, reshuffles and control samples.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the results table here (Parquet).")
def observe_cmd(texts: tuple[str, ...], train_path: str, run_dir: str, methods: tuple[str, ...], span_chars: int,
                boundary: str, fraction: float, reshuffles: int, lr: float, batch_size: int, statistic: str,
                control: str, report_p: str, derive_data: str, derive_offset: int, derive_rows: int, derive_lr: float,
                derive_batch_size: int, seed: int, out_path: str | None) -> None:
    """Test whether each suspect TEXT was generated by a model derived from our run, without access to that model.

    overlap: Spearman rho between training position and how many of the text's spans each training example
    contains (needs a lot of text). retrain: retrain our run's last phase from --boundary in the original order and
    in K reshuffles; a derived model's text is likelier under the original order (z > 0, small p). A suspect model
    fine-tuned after our run drifts away from every retrained model; --derive-data gives each retrained model a
    fine-tuning of its own on other text first, which keeps the test exact and restores much of the signal.

    \b
    Example:
      curate provenance observe --text suspect.parquet --train data/corpus/train.parquet --run checkpoints/lm \\
        --method overlap --method retrain --boundary checkpoints/lm/ckpt-000097.safetensors \\
        --fraction 0.05 --reshuffles 19 --lr 3e-4 --batch-size 32 --out observed.parquet \\
        --derive-data data/corpus/val.parquet --derive-offset 170 --derive-rows 160 --derive-batch-size 16
    """
    from curation.config import load
    from curation.io import read_table, write_parquet
    from curation.provenance.config import ObserveConfig
    from curation.provenance.observe import observe_files
    from curation.provenance.palimpsest import check_positions
    from curation.provenance.verdict import text_verdict
    from curation.training.outputs import POSITIONS, read_positions

    cfg = load(ObserveConfig, {"methods": list(methods), "span_chars": span_chars, "boundary": boundary,
                               "fraction": fraction, "n_reshuffles": reshuffles, "statistic": statistic,
                               "retrain_train": {"learning_rate": lr, "batch_size": batch_size},
                               "control": control, "report_p": report_p, "seed": seed,
                               "simulate_derivation": {"data": derive_data, "offset": derive_offset, "rows": derive_rows,
                                                       "train": {"learning_rate": derive_lr,
                                                                 "batch_size": derive_batch_size}}},
               where="curate provenance observe")
    positions = check_positions(read_positions(run_dir), where=f"{run_dir}/{POSITIONS}")
    train = read_table(train_path, columns=["example_id", "text"])
    table = observe_files(list(texts), train, positions, cfg)
    for row in table.iter_rows(named=True):
        click.echo(f"{row['text_file']} [{row['method']}]: statistic={row['statistic']:+.4f}  "
                   f"p={row['p_value']:.3g} ({row['p_value_kind']})  p_rank={row['p_rank']:.3g}  "
                   f"n_tokens={row['n_tokens']}")
        click.echo(f"  {text_verdict(row).statement}")
    if out_path:
        write_parquet(table, out_path)
