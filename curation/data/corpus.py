"""A real multi-domain text corpus assembled from text installed with Python and the project's packages.

Domains (nothing is downloaded, nothing is generated):
- ``code``: the standard library's top-level ``*.py`` modules;
- ``reference_docs``: the language reference topics shipped in ``pydoc_data.topics``;
- ``licenses``: license files of the installed distributions (``*.dist-info``);
- ``package_docs``: the long descriptions (READMEs) in the installed distributions' ``METADATA``.

Documents are cut into passages (one example each); ids are ``<domain>/<source>/<n>``, the split is by hashing
the id, and each domain is capped at a number of passages chosen by id hash (deterministic, spread over sources).
"""

from __future__ import annotations

import email.parser
import hashlib
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import polars as pl

DOMAINS = ("code", "reference_docs", "licenses", "package_docs")


@dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    """How the demo corpus is cut and split."""

    passage_chars: int = field(default=192, metadata={"help": "characters per passage (one training example)"})
    max_passages_per_domain: int = field(default=600, metadata={"help": "cap per domain, chosen by id hash"})
    val_fraction: float = field(default=0.15, metadata={"help": "fraction of passages in the validation split"})
    domains: tuple[str, ...] = field(default=DOMAINS, metadata={"help": f"domains to include, from {DOMAINS}"})

    def __post_init__(self) -> None:
        unknown = set(self.domains) - set(DOMAINS)
        if unknown:
            raise ValueError(f"unknown domain(s) {sorted(unknown)}; available: {', '.join(DOMAINS)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be in (0, 1)")
        if self.passage_chars < 16:
            raise ValueError("passage_chars must be at least 16")


def id_hash(example_id: str) -> float:
    """Deterministic hash of an id in [0, 1)."""
    return int(hashlib.sha1(example_id.encode()).hexdigest()[:12], 16) / 16**12


def _stdlib_code() -> Iterator[tuple[str, str]]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(lib.glob("*.py")):
        yield path.stem, path.read_text(encoding="utf-8", errors="replace")


def _reference_docs() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield name, topics[name]


def _distributions() -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name not in seen:
            seen[name] = dist
    return [seen[k] for k in sorted(seen)]


def _licenses() -> Iterator[tuple[str, str]]:
    for dist in _distributions():
        name = dist.metadata["Name"].lower()
        for f in sorted(dist.files or [], key=str):
            base = f.name.upper()
            if base.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE")) and "dist-info" in str(f):
                try:
                    text = f.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                if text and text.strip():
                    yield f"{name}:{f.as_posix().split('.dist-info/', 1)[-1]}", text


def _package_docs() -> Iterator[tuple[str, str]]:
    for dist in _distributions():
        raw = dist.read_text("METADATA")
        if not raw:
            continue
        msg = email.parser.Parser().parsestr(raw)
        body = msg.get_payload() if not msg.is_multipart() else ""
        if isinstance(body, str) and len(body.strip()) > 200:
            yield dist.metadata["Name"].lower(), body


SOURCES = {
    "code": _stdlib_code,
    "reference_docs": _reference_docs,
    "licenses": _licenses,
    "package_docs": _package_docs,
}


def passages(text: str, size: int) -> list[str]:
    """Cut text into consecutive passages of ``size`` characters, dropping near-empty ones."""
    out = []
    for start in range(0, len(text), size):
        chunk = text[start : start + size]
        if len(chunk.strip()) >= size // 4:
            out.append(chunk)
    return out


def build_corpus(cfg: CorpusConfig) -> pl.DataFrame:
    """The corpus as one frame: example_id, domain, source, text, split."""
    rows = []
    for domain in cfg.domains:
        domain_rows = []
        seen: set[str] = set()
        for source, text in SOURCES[domain]():
            if source in seen:  # a wheel's RECORD may list one file twice (ray's does): keep it once
                continue
            seen.add(source)
            text = text.replace("\r\n", "\n")
            for n, chunk in enumerate(passages(text, cfg.passage_chars)):
                eid = f"{domain}/{source}/{n}"
                domain_rows.append((id_hash(eid), eid, domain, source, chunk))
        domain_rows.sort()
        rows.extend(domain_rows[: cfg.max_passages_per_domain])
    frame = pl.DataFrame(rows, schema=["h", "example_id", "domain", "source", "text"], orient="row")
    split = pl.when(pl.col("example_id").map_elements(lambda s: id_hash("split:" + s), return_dtype=pl.Float64)
                    < cfg.val_fraction).then(pl.lit("val")).otherwise(pl.lit("train"))
    return frame.drop("h").with_columns(split.alias("split")).sort("example_id")
