"""``curate mixture``: TiKMiX group influence and the next domain mixture, outside a DVC pipeline."""

from __future__ import annotations

import click


def _config(checkpoint: str, train: str, val: str, tasks: str, tokens: int, hessian: str, optimizer: str,
            prior: str, label: str, out: str, report_dir: str = "reports/optimize_mixture", additivity: int = 0,
            normalization: str = "max"):
    from curation.config import load
    from curation.mixture.config import OptimizeMixtureConfig

    return load(OptimizeMixtureConfig, {
        "checkpoint": checkpoint, "train_data": train, "val_data": val, "optimizer": optimizer, "prior": prior,
        "label": label, "out": out, "report_dir": report_dir, "additivity": {"mixtures": additivity},
        "influence": {"tasks": [t for t in tasks.split(",") if t], "tokens_per_domain": tokens,
                      "hessian": {"kind": hessian}},
        "tikmix_d": {"normalization": normalization}, "tikmix_m": {"anchor": {"normalization": normalization}},
    }, where="curate mixture options")


_options = [
    click.option("--checkpoint", required=True, help="Checkpoint file, training out folder or models:/ URI."),
    click.option("--train", "train", required=True, type=click.Path(dir_okay=False), help="Training table with a domain column."),
    click.option("--val", "val", required=True, type=click.Path(dir_okay=False), help="Validation table (task column = domain)."),
    click.option("--tasks", default="", help="Comma-separated validation tasks (default: every domain in --val)."),
    click.option("--tokens", type=click.IntRange(min=1), default=16384, show_default=True, help="Tokens sampled per training domain."),
    click.option("--hessian", type=click.Choice(["identity", "lissa", "ekfac"]), default="identity", show_default=True,
                 help="Inverse-Hessian approximation."),
]


def _with_options(func):
    for option in reversed(_options):
        func = option(func)
    return func


@click.group("mixture")
def mixture_group() -> None:
    """TiKMiX domain mixtures: group influence per (task, domain) and TiKMiX-D / TiKMiX-M / RegMix mixtures.

    \b
    Example:
      curate mixture influence --checkpoint checkpoints/lm --train data/corpus/train.parquet \\
          --val data/corpus/val.parquet --tasks code,reference_docs
      curate mixture optimize --checkpoint checkpoints/lm --train data/corpus/train.parquet \\
          --val data/corpus/val.parquet --tasks code --out mixture.yaml
      curate mixture show mixture.yaml
    """


@mixture_group.command("influence")
@_with_options
@click.option("--out", default="", help="Also write the long influence table (Parquet) here.")
def influence_cmd(checkpoint: str, train: str, val: str, tasks: str, tokens: int, hessian: str, out: str) -> None:
    """Print the task × domain group-influence matrix (positive = the domain lowers the task's loss).

    \b
    Example:
      curate mixture influence --checkpoint checkpoints/lm --train data/corpus/train.parquet \\
          --val data/corpus/val.parquet --hessian ekfac --out influence.parquet
    """
    from curation.io import read_table, write_parquet
    from curation.mixture.group_influence import group_influence
    from curation.mixture.optimize import load_checkpoint_model

    cfg = _config(checkpoint, train, val, tasks, tokens, hessian, "tikmix_d", "natural", "influence", "")
    adapter, model, _ = load_checkpoint_model(checkpoint)
    gi = group_influence(adapter, model, read_table(train), read_table(val), cfg.influence)
    click.echo("task \\ domain".ljust(20) + "".join(d[:14].rjust(15) for d in gi.domains))
    for task, row in zip(gi.tasks, gi.matrix, strict=True):
        click.echo(task[:19].ljust(20) + "".join(f"{v:15.4g}" for v in row))
    if out:
        write_parquet(gi.frame(), out)
        click.echo(f"wrote {out}")


@mixture_group.command("optimize")
@_with_options
@click.option("--optimizer", default="tikmix_d", show_default=True, help="tikmix_d, tikmix_m, regmix or a plugin.")
@click.option("--prior", default="natural", show_default=True, help="natural, uniform or a mixture.yaml path.")
@click.option("--label", type=click.Choice(["influence", "proxy"]), default="influence", show_default=True,
              help="Candidate labels for tikmix_m / regmix.")
@click.option("--additivity", default=8, show_default=True,
              help="Random mixtures realised as mixed samples to check S·w additivity (0 = skip).")
@click.option("--report-dir", default="reports/optimize_mixture", show_default=True,
              help="Folder for the influence table, plots, report.html and metrics.json.")
@click.option("--normalization", type=click.Choice(["prior_gain", "max"]), default="prior_gain", show_default=True,
              help="TiKMiX-D's per-task normalisation: gain over the prior / largest achievable gain, or the "
                   "paper's S / max S (see docs/benchmarks.md, domain mixtures).")
@click.option("--out", default="mixture.yaml", show_default=True, help="Mixture file to write.")
def optimize_cmd(checkpoint: str, train: str, val: str, tasks: str, tokens: int, hessian: str, optimizer: str,
                 prior: str, label: str, additivity: int, report_dir: str, normalization: str, out: str) -> None:
    """Compute the next domain mixture, write it as a mixture file and log an MLflow run (params, heat map,
    old/new mixture, additivity check, report, the mixture file) like the optimize_mixture stage.

    \b
    Example:
      curate mixture optimize --checkpoint checkpoints/lm --train data/corpus/train.parquet \\
          --val data/corpus/val.parquet --tasks code,reference_docs --hessian ekfac --out mixture.yaml
    """
    from pathlib import Path

    from curation.io import read_table
    from curation.mixture.optimize import load_checkpoint_model, optimize_mixture
    from curation.mixture.record import record_round
    from curation.tracking import RunRecorder

    cfg = _config(checkpoint, train, val, tasks, tokens, hessian, optimizer, prior, label, out, report_dir,
                  additivity, normalization)
    adapter, model, path = load_checkpoint_model(checkpoint)
    train_frame = read_table(train)
    with RunRecorder("optimize_mixture", cfg, metrics_path=Path(report_dir) / "metrics.json",
                     tags={"curation.trigger": "cli"}) as rec:
        result = optimize_mixture(adapter, model, train_frame, read_table(val), cfg)
        record_round(rec, result, cfg, checkpoint=str(path), train=train_frame)
    for domain, prev, new in zip(result.domains, result.prior, result.solution.weights, strict=True):
        click.echo(f"{domain:<24}{prev:8.3f} -> {new:.3f}")
    if result.additivity is not None:
        click.echo(f"additivity: Pearson(measured, S·w) = {result.additivity.mean_pearson:.3f} "
                   f"(mean over tasks; pooled {result.additivity.pooled_pearson:.3f})")
    click.echo(f"wrote {out} ({'optimum' if result.solution.success else 'prior kept: ' + result.solution.message}); "
               f"report: {report_dir}/report.html; MLflow run {rec.run_id}")


@mixture_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
def show_cmd(path: str) -> None:
    """Print the weights of a mixture file.

    \b
    Example:
      curate mixture show mixture.yaml
    """
    from curation.mixture.mixture_file import read_mixture

    for domain, weight in read_mixture(path).items():
        click.echo(f"{domain:<24}{weight:.4f}")
