"""A small HTML report builder: headings, paragraphs, key figures, tables from polars, embedded PNG plots."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from curation.io.atomic import write_text

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #4c72b0;padding-bottom:.3rem}h2{margin-top:2rem;color:#33476b}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#eef2f8}td pre{margin:0;white-space:pre-wrap;max-width:600px}
.kv td:first-child{font-weight:600}.meta{color:#666;font-size:.85rem}img{max-width:100%;border:1px solid #eee}
"""


class HTMLReport:
    """Collects sections and writes one self-contained HTML file (no external assets)."""

    def __init__(self, title: str, *, subtitle: str = "") -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.parts.append(f'<p class="meta">{html.escape(subtitle)} generated {generated}</p>')

    def heading(self, text: str) -> HTMLReport:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str) -> HTMLReport:
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def key_values(self, values: dict[str, object]) -> HTMLReport:
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in values.items()
        )
        self.parts.append(f'<table class="kv">{rows}</table>')
        return self

    def table(self, frame: pl.DataFrame, *, max_rows: int = 50, max_chars: int = 300) -> HTMLReport:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
        body = []
        for row in frame.head(max_rows).iter_rows():
            cells = []
            for v in row:
                text = _fmt(v)
                if len(text) > max_chars:
                    text = text[:max_chars] + "…"
                cells.append(f"<td><pre>{html.escape(text)}</pre></td>" if "\n" in text else
                             f"<td>{html.escape(text)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        more = f'<p class="meta">{frame.height - max_rows} more rows not shown</p>' if frame.height > max_rows else ""
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>{more}")
        return self

    def image(self, png: str | Path, *, caption: str = "") -> HTMLReport:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        alt = html.escape(caption or Path(png).stem)
        self.parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"/>'
                          f"<figcaption>{alt}</figcaption></figure>")
        return self

    def link(self, text: str, href: str) -> HTMLReport:
        self.parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')
        return self

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
                f"</title><style>{STYLE}</style></head><body>{body}</body></html>")

    def write(self, dest: str | Path) -> Path:
        return write_text(self.render(), dest)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
