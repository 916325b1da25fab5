"""The estimator-trust section of an influence report (``curation.attribution.trust`` computes it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curation.attribution.trust import TrustAssessment
    from curation.reports.html import HTMLReport


def add_trust_section(report: HTMLReport, found: TrustAssessment, k: int) -> HTMLReport:
    """Verdicts first, then the agreement table and (with domains) the top-k domain purity table."""
    report.heading("Estimator trust: is the influence ranking more than text similarity?")
    report.paragraph(
        f"Per query, rankings are compared over all training rows (Spearman) and on their top-{k} lists (overlap; "
        f"chance level k / n_train). Baselines: bm25 (word BM25), tfidf (character n-gram TF-IDF cosine), "
        f"gradient_cosine (cosine of final-checkpoint gradients, no training trajectory). An influence method whose "
        f"lists are mostly a text baseline's, or that retrieves same-domain passages no better, adds little beyond "
        f"text similarity.")
    for line in found.verdicts:
        report.paragraph(line)
    report.table(found.agreement, max_rows=100)
    if found.purity is not None:
        report.paragraph(f"Top-{k} domain purity (share of a query's list from its own domain); vs_best_text is the "
                         f"mean paired per-query difference to the best text baseline, beats_text when it exceeds "
                         f"two standard errors.")
        report.table(found.purity, max_rows=100)
    return report
