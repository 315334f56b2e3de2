"""The reward cache: (prompt_id, sha256 of the response text, reward model key) -> reward.

Rerunning a stage, growing n or adding sample shards never rescores a response that was
scored with the same reward model and revision. The cache is one SQLite file: every insert is
one transaction, so a run killed at any moment leaves the file consistent, holding everything
committed before the kill.

Several processes use it at once (the scoring workers, in-process or Ray actors): lookups are
plain reads, inserts take the write lock up front (``BEGIN IMMEDIATE``) and wait for it up to
``timeout`` seconds. On one machine the journal is WAL (readers never wait for the writer). WAL
needs memory shared between the processes, so workers on several machines use the rollback
journal (``journal="delete"``), which needs only working POSIX file locks on the shared
filesystem; where the filesystem has none, disable the cache (docs/cluster.md).
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sweetspot.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rewards (
    prompt_id TEXT NOT NULL,
    response_sha TEXT NOT NULL,
    model_key TEXT NOT NULL,
    reward REAL,            -- NULL stands for NaN (SQLite stores NaN as NULL)
    PRIMARY KEY (prompt_id, response_sha, model_key)
) WITHOUT ROWID
"""


def text_sha(text: str) -> str:
    """sha256 hex digest of a response text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RewardCache:
    """A persistent map from (prompt_id, response sha, model key) to a float64 reward."""

    def __init__(
        self, path: str | Path, *, journal: str | None = "wal", timeout: float = 300.0
    ) -> None:
        """Open (creating if needed) the cache at ``path``.

        ``journal`` sets SQLite's journal mode: ``"wal"`` (processes on one machine),
        ``"delete"`` (processes on several machines sharing the file), or None to keep the
        file's mode (a worker opening a cache its driver prepared). ``timeout`` is how long a
        write waits for another process's.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit; the connection may move between threads
        # (a Ray actor), never used by two at once.
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        if journal is not None:
            mode = self._db.execute(f"PRAGMA journal_mode={journal}").fetchone()[0]
            if mode.lower() != journal.lower():
                raise InputError(
                    f"cannot set the reward cache's journal to {journal} (another process has it "
                    "open?)",
                    file=str(self.path),
                )
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def lookup(
        self, model_key: str, prompt_ids: Sequence[str], shas: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rewards, found)``: float64 rewards (NaN where missing) and a bool mask."""
        n = len(prompt_ids)
        rewards = np.full(n, np.nan, dtype=np.float64)
        found = np.zeros(n, dtype=bool)
        if n == 0:
            return rewards, found
        wanted = {(p, s): i for i, (p, s) in enumerate(zip(prompt_ids, shas, strict=True))}
        # One query per prompt id keeps the statements small and uses the primary key.
        by_prompt: dict[str, list[str]] = {}
        for p, s in wanted:
            by_prompt.setdefault(p, []).append(s)
        cur = self._db.cursor()
        for p, sha_list in by_prompt.items():
            for start in range(0, len(sha_list), 500):
                chunk = sha_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = cur.execute(
                    "SELECT response_sha, reward FROM rewards WHERE model_key = ? AND "
                    f"prompt_id = ? AND response_sha IN ({marks})",
                    (model_key, p, *chunk),
                ).fetchall()
                for sha, reward in rows:
                    i = wanted[(p, sha)]
                    rewards[i] = np.nan if reward is None else reward
                    found[i] = True
        # Duplicate (prompt, text) pairs share one key: fill every occurrence.
        if len(wanted) < n:
            for i, key in enumerate(zip(prompt_ids, shas, strict=True)):
                j = wanted[key]
                rewards[i], found[i] = rewards[j], found[j]
        return rewards, found

    def put(
        self,
        model_key: str,
        prompt_ids: Iterable[str],
        shas: Iterable[str],
        rewards: Iterable[float],
    ) -> int:
        """Store rewards in one transaction; returns how many rows were written."""
        rows = [
            (p, s, model_key, None if math.isnan(float(r)) else float(r))
            for p, s, r in zip(prompt_ids, shas, rewards, strict=True)
        ]
        if not rows:
            return 0
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now, waiting for other writers
        try:
            self._db.executemany("INSERT OR REPLACE INTO rewards VALUES (?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")  # one transaction: all rows or none
        return len(rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> RewardCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
