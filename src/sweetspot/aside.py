"""Moving finished outputs aside instead of deleting them.

Nothing a user computed is ever deleted by sweetspot: when a stage must be redone (``--force``,
settings changed, outputs modified by hand), the old outputs move to a dated folder under
``superseded/`` of the run (or stage) folder, keeping their relative paths, and the caller says
where.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

SUPERSEDED_DIR = "superseded"


def move_aside(paths: list[Path], root: Path, label: str) -> Path | None:
    """Move every existing path of ``paths`` into ``root/superseded/<UTC time>-<label>/``.

    Paths under ``root`` keep their relative location there; others keep their name. Returns the
    folder they went to, or None when none of them existed (nothing moved).
    """
    existing = [Path(p) for p in paths if Path(p).exists() or Path(p).is_symlink()]
    if not existing:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label).strip("-") or "outputs"
    dest_root = Path(root) / SUPERSEDED_DIR / f"{stamp}-{safe}"
    k = 1
    while dest_root.exists():
        k += 1
        dest_root = Path(root) / SUPERSEDED_DIR / f"{stamp}-{safe}-{k}"
    for p in existing:
        try:
            rel = p.resolve().relative_to(Path(root).resolve())
        except ValueError:
            rel = Path(p.name)
        dest = dest_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, dest)  # same file system: a rename, no copy
    return dest_root
