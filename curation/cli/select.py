"""``curate select``: keep the rows of your own pool that look most like a target, under a budget."""

from __future__ import annotations

import click


def parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``KEY=VALUE`` flag values as a flat mapping of strings; a malformed one is an error naming ``option``."""
    from curation.errors import ConfigError

    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option}: expected KEY=VALUE, got {value!r}")
        out[key] = rest
    return out


def parse_quotas(values: tuple[str, ...]) -> dict[str, float]:
    """``--quota GROUP=SHARE`` values as group -> share (shared by ``curate select`` and ``select-targeted``)."""
    from curation.errors import ConfigError

    try:
        return {k: float(v) for k, v in parse_pairs(values, "--quota").items()}
    except ValueError as exc:
        raise ConfigError(f"--quota: share must be a number ({exc})") from None


@click.command("select")
@click.option("--pool", required=True, type=click.Path(),
              help="Pool: a Parquet file or a folder of Parquet shards with example_id and text columns.")
@click.option("--target", required=True, type=click.Path(dir_okay=False),
              help="Target table (Parquet/JSONL/CSV) with a text column: what the selection should look like.")
@click.option("--target-filter", multiple=True, metavar="COLUMN=VALUE",
              help="Use only target rows where COLUMN equals VALUE (repeatable).")
@click.option("--method", default="dsir", show_default=True, help="Registered selection scorer.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Scorer option, VALUE parsed as YAML (e.g. min_example_length=20; repeatable).")
@click.option("--budget", type=click.Choice(["fraction", "count", "tokens"]), default="fraction", show_default=True,
              help="What --value counts: a fraction of the eligible rows, rows, or whitespace tokens.")
@click.option("--value", type=float, default=0.1, show_default=True, help="The budget.")
@click.option("--topk", is_flag=True, help="Keep the highest scores instead of Gumbel top-k importance sampling.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Gumbel noise.")
@click.option("--group-column", default="", help="Column whose groups get quotas (e.g. domain).")
@click.option("--quota", "quotas", multiple=True, metavar="GROUP=SHARE",
              help="Share of the budget for a group (shares sum to 1; repeatable). Without any, a group column "
                   "splits the budget in proportion to group sizes.")
@click.option("--no-dedup", is_flag=True, help="Keep exact duplicate texts.")
@click.option("--text-column", default="text", show_default=True, help="Text column of pool and target.")
@click.option("--token-column", default="", help="Per-row token counts for --budget tokens (default: words).")
@click.option("--no-kl", is_flag=True, help="Skip the KL-reduction figure (saves one pass over the pool).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: filtered.parquet, selection.parquet, manifest.json, "
                   "not_selected_issues.parquet, summary.parquet.")
def select_cmd(pool: str, target: str, target_filter: tuple[str, ...], method: str, options: tuple[str, ...],
               budget: str, value: float, topk: bool, seed: int, group_column: str, quotas: tuple[str, ...],
               no_dedup: bool, text_column: str, token_column: str, no_kl: bool, out_dir: str) -> None:
    """Select the pool rows closest to a target and write the filtered pool with a manifest.

    DSIR (default) weighs each pool text by how much more likely its hashed unigrams and bigrams are under the
    target than under the pool, then samples the budget without replacement in proportion to those weights.
    No DVC or MLflow needed.

    \b
    Example:
      curate select --pool data/pool/ --target data/target.parquet --budget count --value 10000 \\
          --group-column domain --quota web=0.7 --quota books=0.3 --option min_example_length=50 --out selected
    """
    import yaml

    from curation.config import load
    from curation.selection.run import run_selection
    from curation.selection.selector import SelectorConfig

    scorer_options = {k: yaml.safe_load(v) for k, v in parse_pairs(options, "--option").items()}
    if text_column != "text":
        scorer_options.setdefault("text_column", text_column)
    shares = parse_quotas(quotas)
    selector = load(SelectorConfig, {"budget": budget, "value": value, "method": "topk" if topk else "gumbel",
                                     "seed": seed, "group_column": group_column, "quotas": shares,
                                     "dedup": not no_dedup, "text_column": text_column,
                                     "token_column": token_column}, where="curate select")
    result = run_selection(pool, target, out_dir, scorer={"name": method, "options": scorer_options},
                           selector=selector, target_filter=parse_pairs(target_filter, "--target-filter"),
                           kl_reduction=not no_kl)
    m = result.manifest
    kl = f", KL reduction {m['kl_reduction']:.4f}" if "kl_reduction" in m else ""
    click.echo(f"{m['rows_in']} rows: kept {m['kept']}, dropped {m['dropped']} "
               f"({', '.join(f'{r} {n}' for r, n in m['dropped_by_reason'].items())}){kl} -> {out_dir}/filtered.parquet")
