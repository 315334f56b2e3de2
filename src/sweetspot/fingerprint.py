"""Fingerprints: short hashes of JSON values and of files, to tell whether anything changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Files above this size are fingerprinted by size and modification time, not content, so that
# checking a run with a 16 GB model does not read 16 GB.
CONTENT_HASH_LIMIT = 64 * 1024 * 1024


def hash_json(obj: Any) -> str:
    """sha256 (16 hex) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    st = path.stat()
    if st.st_size > CONTENT_HASH_LIMIT:
        return f"size={st.st_size},mtime={st.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(paths: Iterable[Path], root: Path | None = None) -> str | None:
    """A hash of the files at ``paths`` (files or folders, recursively); None if none exists.

    Hidden files (``.tmp-*`` left by a killed writer, ``.cache``) are ignored.
    """
    entries: list[tuple[str, str]] = []
    found = False
    for p in paths:
        p = Path(p)
        if not p.exists():
            entries.append((_rel(p, root), "missing"))
            continue
        found = True
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            rel = f.relative_to(p) if f != p else Path(f.name)
            if any(part.startswith(".") for part in rel.parts):
                continue
            entries.append((_rel(f, root), _file_digest(f)))
    if not found:
        return None
    return hash_json(entries)


def _rel(p: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(p)
