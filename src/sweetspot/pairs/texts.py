"""Pass 2 of the pair stage: the texts of the selected responses, and prompts' messages.

Pass 1 (:mod:`sweetspot.pairs.pool`) keeps no text but the texts of the rows it already knew
to be picked (:mod:`sweetspot.pairs.capture`). Once every strategy has picked its rows,
:class:`StreamedTexts` serves those from memory and streams the input files once more for the
others only, taking the text of those rows (reading, in Parquet, only the text column of the row
groups that hold one), so memory grows with the pairs' text, not the pool's. Strings are kept as
``large_string`` or as separate chunks: no string array is ever concatenated past 2 GB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.pairs.capture import take_texts
from sweetspot.pairs.sources import SourceFile, map_ordered


class TextSource:
    """Response texts by the pool's flat row number."""

    def take(self, rows: np.ndarray) -> pa.Array:  # pragma: no cover - interface
        """The texts of flat rows ``rows`` (in that order) as a string array."""
        raise NotImplementedError


@dataclass
class ArrowTexts(TextSource):
    """Texts kept as an Arrow array; ``rows`` index the pool's flat arrays via ``index``."""

    texts: pa.Array
    index: np.ndarray

    def take(self, rows: np.ndarray) -> pa.Array:
        return self.texts.take(pa.array(self.index[rows]))


class FetchedTexts(TextSource):
    """The texts of a sorted set of flat rows, fetched at once (pass 2); ``take`` looks up any
    of those rows, ``signatures`` their end-word signatures (computed once for all strategies).
    """

    def __init__(self, rows: np.ndarray, texts: pa.Array) -> None:
        self.rows = rows
        self.texts = texts
        self._signatures = None

    def _pos(self, rows: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.rows, rows)
        if len(rows) and (pos.max() >= len(self.rows) or np.any(self.rows[pos] != rows)):
            raise KeyError("a row whose text was not fetched")
        return pos

    def take(self, rows: np.ndarray) -> pa.Array:
        return self.texts.take(pa.array(self._pos(rows), pa.int64()))

    def signatures(self, rows: np.ndarray):
        """The :func:`~sweetspot.pairs.identical.edge_signatures` of the texts of ``rows``."""
        from sweetspot.pairs.identical import edge_signatures

        if self._signatures is None:
            self._signatures = edge_signatures(self.texts)
        return self._signatures.take(self._pos(rows))


@dataclass
class TextFile:
    """Where the texts of one input file are: its global response ids ``start`` to
    ``start + count``, in column ``column`` (a list of texts per row when ``wide``)."""

    file: SourceFile
    start: int
    count: int
    column: str
    wide: bool = False
    kept: list[pa.Array] | None = None  # the whole column, kept by pass 1 (short texts)


class StreamedTexts(TextSource):
    """Texts read back from the input files for the rows asked for, one pass per ``take``;
    rows whose texts pass 1 caught (:mod:`sweetspot.pairs.capture`) are served from those.

    ``ids`` maps the pool's flat rows to global response ids (the order in which pass 1 met
    the responses, file after file; None: they are the same). ``reads`` counts the texts read
    from files again, ``from_pass_1`` those served from the caught ones (tests check that only
    picked rows are read).
    """

    def __init__(
        self,
        files: list[TextFile],
        ids: np.ndarray | None,
        progress: Callable[[str, float], None] | None = None,
    ) -> None:
        self.files = files
        self.ids = ids
        self.progress = progress
        self.reads = 0
        self.from_pass_1 = 0
        self._caught: tuple[np.ndarray, np.ndarray, pa.Array] | None = None
        self._complete: np.ndarray | None = None
        self._offsets: np.ndarray | None = None

    def add_caught(
        self, ids: np.ndarray, texts: pa.Array, complete: np.ndarray, offsets: np.ndarray
    ) -> None:
        """Texts caught in pass 1 (by global response id), usable for the rows of the prompts
        marked ``complete`` (``offsets``: the pool's prompt offsets)."""
        order = np.argsort(ids, kind="stable")
        self._caught = (ids[order], order, texts)
        self._complete = complete
        self._offsets = offsets

    def take(self, rows: np.ndarray) -> pa.Array:
        rows = np.asarray(rows, dtype=np.int64)
        wanted = rows if self.ids is None else self.ids[rows]
        hit = np.zeros(len(rows), dtype=bool)
        if self._caught is not None and len(rows):
            sorted_ids, order, caught = self._caught
            prompt = np.searchsorted(self._offsets, rows, side="right") - 1
            pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
            hit = self._complete[prompt] & (sorted_ids[pos] == wanted)
        if hit.all() and len(rows):
            self.from_pass_1 += len(rows)
            return caught.take(pa.array(order[pos], pa.int64()))
        if not hit.any():
            return self._read(wanted)
        self.from_pass_1 += int(hit.sum())
        rest = np.flatnonzero(~hit)
        parts = [caught.take(pa.array(order[pos[hit]], pa.int64())), self._read(wanted[rest])]
        at = np.concatenate([np.flatnonzero(hit), rest])
        inverse = np.empty(len(at), dtype=np.int64)
        inverse[at] = np.arange(len(at))
        return pa.concat_arrays(parts).take(pa.array(inverse, pa.int64()))

    def _read(self, wanted: np.ndarray) -> pa.Array:
        """The texts of global response ids ``wanted`` (in that order), read from the files."""
        uniq, inverse = np.unique(wanted, return_inverse=True)
        chunks: list[pa.Array] = []
        starts = np.array([f.start for f in self.files], dtype=np.int64)
        lo = np.searchsorted(uniq, starts)
        hi = np.searchsorted(uniq, starts + np.array([f.count for f in self.files], np.int64))
        todo = [(f, uniq[a:b] - f.start) for f, a, b in zip(self.files, lo, hi) if b > a]
        if self.progress is not None:
            self.progress("pass 2: texts of the pairs", float(max(1, len(todo))))
        for (f, local), got in zip(
            todo, map_ordered(lambda job: _read_rows(job[0], job[1], self.progress), todo)
        ):
            chunks.extend(got)
            if f.kept is None:
                self.reads += len(local)
            else:  # kept whole by pass 1
                self.from_pass_1 += len(local)
        texts = pa.concat_arrays(chunks) if chunks else pa.array([], pa.large_string())
        inverse = inverse.ravel()
        if len(inverse) == len(texts) and np.all(np.diff(wanted) > 0):
            return texts  # asked for in file order, once each: already in place
        return texts.take(pa.array(inverse, pa.int64()))


def _read_rows(
    f: TextFile, local: np.ndarray, progress: Callable[[str, float], None] | None
) -> list[pa.Array]:
    """The texts at sorted 0-based response positions ``local`` of one file, as large_string
    chunks in that order."""
    if f.kept is not None:
        _tick(progress, 1.0)
        return [take_texts(f.kept, local)]
    out = []
    done = 0.0
    if f.wide:  # list positions: every row group up to the last wanted row is needed
        pos = 0
        for _, batch in f.file.batches([f.column], {f.column: pa.list_(pa.string())}):
            texts = pc.list_flatten(batch.column(f.column))
            a, b = np.searchsorted(local, [pos, pos + len(texts)])
            if b > a:
                out.append(_large(texts.take(pa.array(local[a:b] - pos, pa.int64()))))
            pos += len(texts)
            done += _tick(progress, len(texts) / max(1, f.count))
            if b == len(local):
                break
    else:
        for first, batch in f.file.batches([f.column], {f.column: pa.string()}, rows=local):
            a, b = np.searchsorted(local, [first, first + batch.num_rows])
            if b > a:
                texts = batch.column(f.column)
                out.append(_large(texts.take(pa.array(local[a:b] - first, pa.int64()))))
            done += _tick(progress, batch.num_rows / max(1, f.count))
            if b == len(local):
                break
    _tick(progress, max(0.0, 1.0 - done))
    return out


def _tick(progress: Callable[[str, float], None] | None, fraction: float) -> float:
    if progress is not None:
        progress("", fraction)
    return fraction


def _large(texts: pa.Array) -> pa.Array:
    if pa.types.is_null(texts.type):
        return pa.nulls(len(texts), pa.large_string())
    return texts.cast(pa.large_string())


class MessageSource:
    """Prompt messages by the pool's prompt index."""

    def take(self, prompts: np.ndarray) -> pa.Array:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ChunkedMessages(MessageSource):
    """Messages kept as Arrow chunks (never as Python objects): prompt ``p`` is row
    ``row[p]`` of ``chunks[chunk[p]]``."""

    chunks: list[pa.Array]
    chunk: np.ndarray
    row: np.ndarray

    @classmethod
    def from_array(cls, messages: pa.Array | pa.ChunkedArray) -> ChunkedMessages:
        chunks = messages.chunks if isinstance(messages, pa.ChunkedArray) else [messages]
        sizes = [len(c) for c in chunks]
        chunk = np.repeat(np.arange(len(chunks)), sizes)
        row = np.arange(sum(sizes)) - np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
        return cls(list(chunks), chunk.astype(np.int64), row.astype(np.int64))

    def take(self, prompts: np.ndarray) -> pa.Array:
        return take_chunked(self.chunks, self.chunk[prompts], self.row[prompts])


def take_chunked(chunks: list[pa.Array], chunk: np.ndarray, row: np.ndarray) -> pa.Array:
    """``chunks[chunk[i]][row[i]]`` for every i, without concatenating the chunks."""
    from sweetspot.io import MESSAGES_TYPE

    if not len(chunk):
        return pa.array([], chunks[0].type if chunks else MESSAGES_TYPE)
    order = np.lexsort((row, chunk))
    c_sorted = chunk[order]
    bounds = np.flatnonzero(np.diff(c_sorted)) + 1
    parts = []
    for sl in np.split(np.arange(len(order)), bounds):
        c = int(c_sorted[sl[0]])
        parts.append(chunks[c].take(pa.array(row[order[sl]], pa.int64())))
    gathered = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order))
    return gathered.take(pa.array(inverse))
