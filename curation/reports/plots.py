"""Matplotlib figures (Agg backend) saved as PNG files; each returns the path it wrote."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from curation.io.atomic import atomic_path


def _save(fig: plt.Figure, dest: str | Path) -> Path:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(dest)


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    dest: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """One line per named (x, y) series."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), label=name, marker="o" if len(x) < 30 else None, markersize=3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, dest)


def bar_plot(values: Mapping[str, float], dest: str | Path, *, title: str, ylabel: str) -> Path:
    """Bars for named values."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar(list(values.keys()), list(values.values()), color="#4c72b0")
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    return _save(fig, dest)


def histogram(values: Sequence[float], dest: str | Path, *, title: str, xlabel: str, bins: int = 50) -> Path:
    """Histogram of one sample."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(list(values), bins=bins, color="#4c72b0")
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    return _save(fig, dest)
