"""Self-contained HTML reports (plots embedded as PNG data URIs) rendered from frames; no computation here."""

from curation.reports.html import HTMLReport
from curation.reports.plots import bar_plot, histogram, line_plot

__all__ = ["HTMLReport", "bar_plot", "histogram", "line_plot"]
