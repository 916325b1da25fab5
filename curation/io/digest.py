"""Content digests for files and folders (manifests, store guards, run tags)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_digest(path: str | os.PathLike[str], *, length: int = 16) -> str:
    """sha256 of a file's bytes, or of a folder's relative names and file bytes in sorted order."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:length]
