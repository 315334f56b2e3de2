"""Texts of the picked rows, caught during pass 1 while a batch's texts are in memory.

A prompt's pairs depend on that prompt's rewards alone (:mod:`sweetspot.pairs.segments`), so
picking among the rows of a prompt whose responses all arrive in one batch gives exactly the
rows the pool-wide selection picks later. Pass 1 therefore runs every strategy on each batch's
prompts and keeps the texts of the rows they pick (two per prompt per strategy at most); a prompt
that may go on in the next batch of the same file waits for it. After pass 1, a prompt whose rows
were all seen together by one such call is *complete*: its texts are already here. Pass 2 reads
the files again only for the others (a prompt split across files or out of order), so for shards
that hold each prompt's samples together the pool's text is read once.

Catching costs a selection per batch; for texts of a few bytes, reading them again is cheaper,
so files whose texts average under ``MIN_TEXT_BYTES`` are not caught (:func:`worth_catching`).
Their whole text column is kept instead, as read, while a :class:`TextBudget` allows (a few
hundred MB: texts of a few bytes, millions of them), so pass 2 takes them from memory; past the
budget, files are read again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.strategies import Strategy

MIN_TEXT_BYTES = 128
KEEP_SHORT_TEXTS_BYTES = 512 * 2**20  # pass 1 keeps short texts whole up to this much


class TextBudget:
    """Bytes of short texts that pass 1 may keep, claimed by the files' scans (in threads)."""

    def __init__(self, limit: int | None = None) -> None:
        self.left = KEEP_SHORT_TEXTS_BYTES if limit is None else limit
        self._lock = threading.Lock()

    def claim(self, nbytes: int) -> bool:
        """Take ``nbytes`` from the budget; False (taking nothing) when it does not fit."""
        with self._lock:
            if nbytes > self.left:
                return False
            self.left -= nbytes
            return True


def worth_catching(texts: pa.Array) -> bool:
    """Whether a file whose first batch holds ``texts`` has texts long enough to catch."""
    if not len(texts) or pa.types.is_null(texts.type):
        return False
    return texts.nbytes / len(texts) >= MIN_TEXT_BYTES


@dataclass(frozen=True)
class Picker:
    """The strategies (and the σ and seed settings) whose rows pass 1 catches."""

    strategies: tuple[Strategy, ...]
    ddof: float = 0.0
    seed: int = 0

    def rows(
        self, pids: list[str], key: np.ndarray, idx: np.ndarray, reward: np.ndarray, keep
    ) -> np.ndarray:
        """Positions (into the given arrays) of the rows that any strategy picks, taking the
        prompts ``pids[key]`` as complete; ``keep`` marks the usable rows."""
        pos = np.flatnonzero(keep)
        if not len(pos):
            return pos
        k = key[pos]
        i = idx[pos]
        grouped = np.all((k[1:] > k[:-1]) | ((k[1:] == k[:-1]) & (i[1:] > i[:-1])))
        if not grouped:  # the usual shard is grouped by prompt already
            order = np.lexsort((i, k))
            pos, k = pos[order], k[order]
        counts = np.bincount(k, minlength=len(pids))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ctx = PoolContext(
            reward[pos],
            offsets,
            idx[pos],
            np.array(pids, dtype=object),
            ddof=self.ddof,
            seed=self.seed,
        )
        picked = []
        for s in self.strategies:
            c, _ = s.chosen.select(ctx)
            r, _ = s.rejected.select(ctx, c)
            picked += [c[c >= 0], r[r >= 0]]
        return np.unique(pos[np.concatenate(picked)])


@dataclass
class Caught:
    """What one catch call kept: texts of picked rows (by their 0-based response position in
    the file), and each prompt it saw with its number of rows (all rows, usable or not)."""

    positions: np.ndarray
    texts: pa.Array
    pids: list[str]
    counts: np.ndarray


@dataclass
class _Rows:
    """Rows waiting to be picked from; ``text`` indexes the concatenation of ``sources`` (the
    texts are not copied: a batch's text array is only referred to)."""

    pids: list[str]
    key: np.ndarray
    idx: np.ndarray
    reward: np.ndarray
    keep: np.ndarray
    positions: np.ndarray
    sources: list[pa.Array]
    text: np.ndarray

    def select(self, rows: np.ndarray) -> _Rows:
        return _Rows(
            self.pids,
            self.key[rows],
            self.idx[rows],
            self.reward[rows],
            self.keep[rows],
            self.positions[rows],
            self.sources,
            self.text[rows],
        )

    def texts(self, rows: np.ndarray) -> pa.Array:
        """The texts of ``rows`` (in that order) as one large_string array."""
        return take_texts(self.sources, self.text[rows])


def take_texts(sources: list[pa.Array], at: np.ndarray) -> pa.Array:
    """``concat(sources)[at]`` without concatenating the sources."""
    bounds = np.cumsum([0] + [len(s) for s in sources])
    src = np.searchsorted(bounds, at, side="right") - 1
    order = np.argsort(src, kind="stable")
    parts = []
    for k in np.unique(src):
        rows = at[order][src[order] == k] - bounds[k]
        parts.append(sources[k].take(pa.array(rows, pa.int64())).cast(pa.large_string()))
    if not parts:
        return pa.array([], pa.large_string())
    gathered = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    if np.all(order[:-1] < order[1:]):
        return gathered
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order))
    return gathered.take(pa.array(inverse, pa.int64()))


@dataclass
class Catcher:
    """Catches the picked texts of one file batch by batch; the rows of the prompt that ends a
    batch wait for the next batch (a prompt may run across batches of the same file)."""

    picker: Picker
    tail: _Rows | None = field(default=None)

    def feed(
        self,
        pids: list[str],
        key: np.ndarray,
        idx: np.ndarray,
        reward: np.ndarray,
        keep: np.ndarray,
        positions: np.ndarray,
        texts: pa.Array,
        last: bool = False,
    ) -> Caught | None:
        """One batch (``pids[key]`` per row; ``positions``: each row's response position in the
        file). ``last``: no batch of this file follows, nothing waits."""
        if pa.types.is_null(texts.type):
            texts = pa.nulls(len(texts), pa.large_string())
        rows = _Rows(pids, key, idx, reward, keep, positions, [texts], np.arange(len(texts)))
        if self.tail is not None:
            rows = _join(self.tail, rows)
            self.tail = None
        # one key per prompt id (the tail's prompt goes on in this batch; a dictionary may
        # name one prompt twice)
        uniq: dict[str, int] = {}
        remap = np.array([uniq.setdefault(p, len(uniq)) for p in rows.pids], dtype=np.int64)
        rows.key, rows.pids = remap[rows.key], list(uniq)
        if not last and len(rows.key):
            last_key = int(rows.key[-1])
            ending = rows.key == last_key
            tail = np.flatnonzero(ending)
            self.tail = rows.select(tail)
            self.tail.pids, self.tail.key = [rows.pids[last_key]], np.zeros(len(tail), np.int64)
            self.tail.sources, self.tail.text = [rows.texts(tail)], np.arange(len(tail))
            rows = rows.select(np.flatnonzero(~ending))
        return self._pick(rows)

    def flush(self) -> Caught | None:
        """The rows still waiting at the end of the file."""
        if self.tail is None:
            return None
        tail, self.tail = self.tail, None
        return self._pick(tail)

    def _pick(self, rows: _Rows) -> Caught | None:
        if not len(rows.key):
            return None
        picked = self.picker.rows(rows.pids, rows.key, rows.idx, rows.reward, rows.keep)
        counts = np.bincount(rows.key, minlength=len(rows.pids))
        seen = np.flatnonzero(counts)
        return Caught(
            rows.positions[picked],
            rows.texts(picked),
            [rows.pids[i] for i in seen],
            counts[seen],
        )


def _join(a: _Rows, b: _Rows) -> _Rows:
    return _Rows(
        a.pids + b.pids,
        np.concatenate([a.key, b.key + len(a.pids)]),
        np.concatenate([a.idx, b.idx]),
        np.concatenate([a.reward, b.reward]),
        np.concatenate([a.keep, b.keep]),
        np.concatenate([a.positions, b.positions]),
        a.sources + b.sources,
        np.concatenate([a.text, b.text + sum(len(x) for x in a.sources)]),
    )
