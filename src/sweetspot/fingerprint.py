"""Fingerprints: short hashes of JSON values and of files, to tell whether anything changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
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


FileRecord = list  # [size in bytes, mtime in ns, digest]


def _files(p: Path) -> list[tuple[Path, Path]]:
    """(file, its path relative to ``p``) under ``p``, hidden files and folders left out."""
    if p.is_file():
        return [(p, Path(p.name))]
    out = []
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if not any(part.startswith(".") for part in rel.parts) and f.is_file():
            out.append((f, rel))
    return out


def fingerprint_files(
    paths: Iterable[Path],
    root: Path | None = None,
    known: dict[str, FileRecord] | None = None,
    recorded: Callable[[Path, int], str | None] | None = None,
) -> tuple[str | None, dict[str, FileRecord]]:
    """A hash of the files at ``paths`` (files or folders, recursively; None if none exists), and
    the record of every file (size, modification time, digest).

    A file whose size and modification time equal its entry in ``known`` (the records of an
    earlier call) is not read again: its recorded digest is used, so checking a finished run
    costs one ``stat`` per file. ``recorded(file, size)`` may supply a digest recorded when the
    file was written (a shard's completion record). Hidden files (``.tmp-*`` left by a killed
    writer, ``.done/`` records) are ignored.
    """
    known = known or {}
    entries: list[tuple[str, str]] = []
    records: dict[str, FileRecord] = {}
    found = False
    for p in paths:
        p = Path(p)
        if not p.exists():
            entries.append((_rel(p, root), "missing"))
            continue
        found = True
        for f, _ in _files(p):
            rel = _rel(f, root)
            st = f.stat()
            old = known.get(rel)
            if old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns:
                digest = old[2]
            else:
                digest = (recorded(f, st.st_size) if recorded else None) or _file_digest(f)
            records[rel] = [st.st_size, st.st_mtime_ns, digest]
            entries.append((rel, digest))
    if not found:
        return None, records
    return hash_json(entries), records


def fingerprint(paths: Iterable[Path], root: Path | None = None) -> str | None:
    """A hash of the files at ``paths`` (files or folders, recursively); None if none exists.

    Hidden files (``.tmp-*`` left by a killed writer, ``.cache``) are ignored.
    """
    return fingerprint_files(paths, root)[0]


def _rel(p: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(p)
