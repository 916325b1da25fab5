"""Report of a mixture round: domain × task influence heat map, old vs new mixture, validation loss per task and
the additivity check (measured vs predicted influence of real mixed samples)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from curation.io import atomic_path, write_parquet
from curation.mixture.additivity import AdditivityResult
from curation.mixture.optimize import MixtureRound
from curation.reports import HTMLReport


def heatmap(matrix: np.ndarray, rows: tuple[str, ...], cols: tuple[str, ...], dest: str | Path, *, title: str) -> Path:
    """Annotated heat map (diverging colours centred on 0) of ``matrix[rows, cols]``."""
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2.5, 0.6 * len(rows) + 1.8))
    bound = float(np.abs(matrix).max()) or 1.0
    image = ax.imshow(matrix, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set(title=title, xlabel="training domain", ylabel="validation task")
    fig.colorbar(image, ax=ax, shrink=0.8)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(dest)


def mixture_bars(prior: np.ndarray, new: np.ndarray, domains: tuple[str, ...], dest: str | Path) -> Path:
    """Grouped bars: previous vs new weight per domain."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.arange(len(domains))
    ax.bar(x - 0.2, prior, 0.4, label="previous", color="#999999")
    ax.bar(x + 0.2, new, 0.4, label="new", color="#4c72b0")
    ax.set_xticks(x, domains, rotation=30, ha="right")
    ax.set(title="domain mixture", ylabel="weight")
    ax.legend()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(dest)


def additivity_scatter(result: AdditivityResult, dest: str | Path) -> Path:
    """Measured vs additive-predicted (normalised) influence of each mixed sample, one colour per task."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for i, task in enumerate(result.tasks):
        ax.scatter(result.predicted[i], result.measured[i], s=22, label=f"{task} (r = {result.pearson[task]:.3f})")
    lo = float(min(result.predicted.min(), result.measured.min()))
    hi = float(max(result.predicted.max(), result.measured.max()))
    ax.plot([lo, hi], [lo, hi], color="#999999", lw=1, ls="--", label="y = x")
    ax.set(title=f"additivity: pooled r = {result.pooled_pearson:.3f}", xlabel="predicted S·w (normalised)",
           ylabel="measured influence of the mixed sample (normalised)")
    ax.legend(fontsize=8)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(dest)


def mixture_table(result: MixtureRound) -> pl.DataFrame:
    """``domain, previous, new`` weights."""
    return pl.DataFrame({"domain": list(result.domains), "previous": result.prior.tolist(),
                         "new": result.solution.weights.tolist()})


def write_report(result: MixtureRound, out_dir: str | Path, *, optimizer: str, checkpoint: str) -> dict[str, Path]:
    """Influence table (Parquet), heat map, mixture bars and a self-contained HTML report in ``out_dir``."""
    out = Path(out_dir)
    gi = result.influence
    paths = {
        "influence": write_parquet(gi.frame(), out / "group_influence.parquet"),
        "heatmap": heatmap(gi.normalized(), gi.tasks, gi.domains, out / "influence_heatmap.png",
                           title=f"group influence (normalised per task; {gi.hessian} Hessian)"),
        "mixture": mixture_bars(result.prior, result.solution.weights, result.domains, out / "mixture.png"),
    }
    if result.additivity is not None:
        paths["additivity"] = write_parquet(result.additivity.frame(), out / "additivity.parquet")
        paths["additivity_plot"] = additivity_scatter(result.additivity, out / "additivity.png")
    report = HTMLReport("Domain mixture", subtitle=f"{optimizer} at {checkpoint}")
    report.paragraph("S[task, domain] > 0: up-weighting the domain is predicted to lower the task's validation loss.")
    report.image(paths["heatmap"], caption="domain × task group influence, each row divided by its maximum")
    report.image(paths["mixture"], caption="previous vs new mixture")
    report.heading("Mixture").table(mixture_table(result))
    report.heading("Validation loss per task at the checkpoint").table(
        pl.DataFrame({"task": list(result.task_losses), "loss": list(result.task_losses.values())}))
    if result.additivity is not None:
        add = result.additivity
        report.heading("Additivity check")
        report.paragraph(f"{len(add.tokens)} random mixtures around the prior, each realised as a mixed sample of "
                         "the measured token budget; its influence measured directly (same task gradients and "
                         "Hessian approximation) against the additive prediction S·w. TiKMiX-D relies on this "
                         "being linear (target Pearson > 0.8).")
        report.image(paths["additivity_plot"], caption="measured vs predicted influence per mixed sample")
        report.table(pl.DataFrame({"task": [*add.tasks, "pooled"],
                                   "pearson": [*add.pearson.values(), add.pooled_pearson]}))
    report.heading("Raw influence").table(gi.frame())
    report.key_values({"optimizer success": result.solution.success, "message": result.solution.message,
                       "tokens per domain": dict(zip(gi.domains, gi.tokens, strict=True)),
                       "proxy runs": result.proxy_runs})
    paths["report"] = report.write(out / "report.html")
    return paths
