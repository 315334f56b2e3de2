"""A scored pool read by pyarrow in two passes: keys and rewards first, the texts after.

Pass 1 reads the small columns of every file (prompt or prompt_id, sample_idx, reward,
finish_reason) in one scan by Arrow's dataset scanner (:meth:`Files.read`), hashes each distinct
prompt once, and groups the responses by prompt in sample order — the flat arrays plus offsets
the numpy selection uses (:mod:`sweetspot.pairs.context`). Texts
stay in the files: pass 2 (:class:`PoolTexts`) reads the text column once, takes the picked
rows and finds the empty responses on the way. Every response is named by its *source row*:
its row across the text files in order (a wide row's list items count one row each).

Layouts, detected from the columns:
- wide, one row per prompt: ``prompt``/``instruction``, ``responses``/``output``,
  ``rewards``/``scores`` (lists of equal length; the list position is the sample index);
- long, one row per response: ``prompt`` or ``prompt_id`` (+ a prompt table), ``sample_idx``,
  ``response``/``text``, ``reward``;
- a run folder written by ``sweetspot sample`` and ``sweetspot score``: ``prompts.parquet``,
  ``samples/`` and ``scores/``, joined by (prompt_id, sample_idx).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.io import MESSAGES_TYPE
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.prompts import DEFAULT_COLUMNS, load_prompt_table, prompt_messages
from sweetspot.pairs.source import BATCH_BYTES, Files, located, table_files

# Why a response is left out (the order is the order of the checks).
RESPONSE_DROPS = ("non_finite_reward", "empty_response", "truncated")
USABLE, NON_FINITE, TRUNCATED, OUTSIDE = 0, 1, 3, 4  # a source row's status after pass 1
_LONG = ["prompt", "prompt_id", "sample_idx", "reward", "finish_reason"]
HOLD_TEXT_BYTES = 384 << 20  # a pool with less text keeps it from pass 1 (no pass 2)


def in_threads(fn: Callable, items, tick: Callable | None = None) -> list:
    """``fn`` over ``items`` in worker threads (files: pyarrow decodes without the GIL), the
    results in order, ``tick(done, total)`` after each; on an error the work not yet started is
    dropped."""
    items, out = list(items), []
    ex = ThreadPoolExecutor(min(8, os.cpu_count() or 1))
    try:
        for got in ex.map(fn, items):
            out.append(got)
            if tick is not None:
                tick(len(out), len(items))
        return out
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


class TextSource:
    """Texts of flat pool rows (in the order asked)."""

    def take(self, rows: np.ndarray) -> pa.Array:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Pool:
    """A scored pool: all prompts, their usable responses as flat arrays.

    The responses of prompt ``p`` are the flat rows ``offsets[p]:offsets[p+1]``, ordered by
    sample index; ``src_row`` is each one's source row (None: pool row r is source row r).
    Only finite rewards of non-empty (and, when asked, non-truncated) responses are here; the
    others are counted in ``dropped``.
    """

    prompt_ids: np.ndarray
    messages: pa.Array
    offsets: np.ndarray
    sample_idx: np.ndarray
    rewards: np.ndarray
    src_row: np.ndarray | None
    texts: PoolTexts
    responses_in: int
    dropped: dict[str, int] = field(default_factory=dict)
    layout: str = "wide"
    source: str = ""
    status: np.ndarray | None = None  # per source row: USABLE, NON_FINITE, TRUNCATED, OUTSIDE
    reward_models: list[str] = field(default_factory=list)

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    @cached_property
    def by_id(self) -> tuple[np.ndarray, pa.Array, pa.Array]:
        """The prompts sorted by id (the order of output rows): their codes, ids and messages."""
        order = np.argsort(self.prompt_ids, kind="stable")
        ids = pa.array(self.prompt_ids[order].tolist(), pa.string())
        return order, ids, self.messages.take(pa.array(order, pa.int64()))

    def without(self, blank: np.ndarray) -> Pool:
        """This pool less the responses of the source rows ``blank`` (empty texts), counted as
        empty responses (those left out as truncated move there too)."""
        blank = np.unique(blank)
        status = self.status[blank]
        gone = blank[status == USABLE]
        if self.src_row is None:
            drop = np.zeros(len(self.rewards), bool)
            drop[gone] = True
        else:
            drop = np.isin(self.src_row, gone)
        moved = int((status == TRUNCATED).sum())
        dropped = dict(self.dropped)
        dropped["empty_response"] += int(drop.sum()) + moved
        if moved:
            dropped["truncated"] -= moved
        keep = ~drop
        seg = np.repeat(np.arange(self.n_prompts), np.diff(self.offsets))
        n = np.bincount(seg[keep], minlength=self.n_prompts)
        src_row = np.flatnonzero(keep) if self.src_row is None else self.src_row[keep]
        return dataclasses.replace(
            self,
            offsets=np.concatenate([[0], np.cumsum(n)]).astype(np.int64),
            sample_idx=self.sample_idx[keep],
            rewards=self.rewards[keep],
            src_row=src_row,
            texts=dataclasses.replace(self.texts, src_row=src_row),
            dropped=dropped,
        )

    def source_rows(self, rows: np.ndarray) -> np.ndarray:
        """The source rows of pool rows ``rows``."""
        return rows if self.src_row is None else self.src_row[rows]

    @cached_property
    def in_source_order(self) -> bool:
        """Whether pool rows follow their source rows (the input was grouped and in order)."""
        src = self.src_row
        return src is None or bool(np.all(src[1:] > src[:-1]))

    def distinct_rows(self, picks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The pool rows named in ``picks``, each once, and their source rows, in source order
        (few picks sorted; many — the grid's 21 strategies name 2.6 M rows at n = 400 —
        marked in a mask)."""
        if sum(len(p) for p in picks) * 16 < len(self.rewards):
            rows = np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
            rows = rows[np.diff(rows, prepend=-1) != 0]  # np.unique hashes: 20x slower
        else:
            need = np.zeros(len(self.rewards), bool)
            for p in picks:
                need[p] = True
            rows = np.flatnonzero(need)
        src = self.source_rows(rows)
        if not self.in_source_order:
            order = np.argsort(src)
            rows, src = rows[order], src[order]
        return rows, src

    def context(self, ddof: float = 0.0, seed: int = 0) -> PoolContext:
        """Statistics of this pool for pair selection."""
        return PoolContext(
            self.rewards, self.offsets, self.sample_idx, self.prompt_ids, ddof=ddof, seed=seed
        )


class FetchedTexts(TextSource):
    """The texts of a sorted set of source rows, fetched at once: ``positions`` finds pool rows
    (``src_of_row``) among them, ``at`` takes texts by position, ``fingerprints`` holds each
    one's :func:`~sweetspot.pairs.identical.fingerprints` (given, or computed once)."""

    def __init__(self, rows, texts: pa.Array, src_of_row, fingerprints=None) -> None:
        self.rows, self.texts, self.src_of_row = rows, texts, src_of_row
        self._fingerprints = fingerprints

    def positions(self, rows: np.ndarray) -> np.ndarray:
        rows = rows if self.src_of_row is None else self.src_of_row[rows]
        pos = np.searchsorted(self.rows, rows)
        if len(rows) and (pos.max() >= len(self.rows) or np.any(self.rows[pos] != rows)):
            raise KeyError("a row whose text was not fetched")
        return pos

    def at(self, pos: np.ndarray) -> pa.Array:
        return self.texts.take(pa.array(pos, pa.int64()))

    def take(self, rows: np.ndarray) -> pa.Array:
        return self.at(self.positions(rows))

    @property
    def fingerprints(self) -> np.ndarray:
        from sweetspot.pairs.identical import fingerprints

        if self._fingerprints is None:
            self._fingerprints = fingerprints(self.texts)
        return self._fingerprints


@dataclass
class PoolTexts(TextSource):
    """Pass 2: the text column of the files, read file by file in threads (or, where pass 1
    kept the texts of a small pool, ``held``: per file, its batches' first source row and
    texts). ``starts`` holds each file's first source row; ``src_row`` maps pool rows to
    source rows."""

    files: Files
    starts: np.ndarray
    key: str  # "response", or "responses" (wide: lists flattened)
    src_row: np.ndarray | None
    flat: dict[int, np.ndarray] = field(default_factory=dict)  # wide: each row's first item
    held: list[list[tuple[int, pa.Array]]] | None = None
    reads: int = 0
    tick: Callable | None = None  # progress: tick(files done, files)

    def take(self, rows: np.ndarray) -> pa.Array:
        src = np.asarray(rows, dtype=np.int64)
        src = src if self.src_row is None else self.src_row[src]
        uniq, back = np.unique(src, return_inverse=True)
        return self.scan(uniq, blanks=False)[1].take(pa.array(back.ravel(), pa.int64()))

    def scan(
        self, wanted: np.ndarray, blanks: bool = True, instead: Callable | None = None
    ) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
        """The sorted source rows read, their texts (large strings) and
        :func:`~sweetspot.pairs.identical.fingerprints` and, with ``blanks``, the source rows
        whose text is missing or only whitespace: one pass over the files that hold a wanted
        row (every file with ``blanks``), in threads. The rows read are those of ``wanted``
        (sorted) and, where the batches of rows ``[lo, hi)`` in hand (about ``BATCH_BYTES``
        of text) have empty ones, those of ``instead(empty rows, lo, hi)``: what the picks
        become without them."""
        from sweetspot.pairs.identical import fingerprints

        at = np.searchsorted(wanted, self.starts)
        todo = [i for i in range(len(self.files.paths)) if blanks or at[i] < at[i + 1]]
        instead = instead if blanks else None
        groups = self._groups(todo) if instead else [[i] for i in todo]  # consecutive files

        def one(group: list[int]) -> list[tuple]:
            out, held = [], []

            def flush() -> None:
                empty = np.concatenate([h[3] for h in held]) if instead and held else []
                if len(empty):
                    lo, hi = held[0][0], held[-1][0] + len(held[-1][1])
                    extra = np.sort(instead(empty, lo, hi))
                for start, col, rows, blank in held:
                    found = len(rows)
                    if len(empty):
                        lo, hi = np.searchsorted(extra, [start, start + len(col)])
                        rows = np.union1d(rows, extra[lo:hi])
                    if len(rows):
                        texts = col.take(pa.array(rows - start)).cast(pa.large_string())
                        out.append((rows, texts, blank, fingerprints(texts), found))
                    elif blanks:
                        out.append((None, None, blank, None, 0))
                held.clear()

            size = empties = 0  # of the batches held: from one with an empty response on
            for i in group:
                want = wanted[at[i] : at[i + 1]]
                for start, col in self._columns(i):
                    lo, hi = np.searchsorted(want, [start, start + len(col)])
                    blank = start + blank_rows(col) if blanks else None
                    held.append((start, col, want[lo:hi], blank))
                    size, empties = size + col.nbytes, empties + (len(blank) if instead else 0)
                    if not empties or size >= BATCH_BYTES:
                        flush()
                        size = empties = 0
            flush()
            return out

        ends = np.cumsum([len(g) for g in groups])
        tick = self.tick and (lambda done, _: self.tick(int(ends[done - 1]), len(todo)))
        got = [b for g in in_threads(one, groups, tick) for b in g]
        self.reads += len(wanted)
        if sum(b[4] for b in got) != len(wanted):
            raise InputError("a picked response was not found again in the input")

        def joined(k: int) -> np.ndarray:
            parts = [b[k] for b in got if b[k] is not None]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)

        texts = [b[1] for b in got if b[1] is not None]
        texts = pa.concat_arrays(texts) if texts else pa.array([], pa.large_string())
        return joined(0), texts, joined(2), joined(3)

    def _groups(self, files: list[int]) -> list[list[int]]:
        """Consecutive files in groups of about ``BATCH_BYTES`` of text."""
        rows = np.diff(self.starts)
        per_row = self.files.bytes_of(self.key) / max(int(rows.sum()), 1)
        groups, size = [], BATCH_BYTES
        for i in files:
            if size >= BATCH_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(i)
            size += rows[i] * per_row
        return groups

    def _columns(self, i: int) -> Iterator[tuple[int, pa.Array]]:
        """File ``i``'s texts, batch by batch, with the source row of each batch's first."""
        if self.held is not None:
            yield from self.held[i]
            return
        for start, b in self.files.batches(self.files.paths[i], [self.key]):
            col = b[self.key]
            if self.key == "responses":
                start, col = int(self.flat[i][start]), pc.list_flatten(col)
            yield int(self.starts[i]) + start, col


def blank_rows(texts: pa.Array) -> np.ndarray:
    """Positions of the texts that are missing, empty or only whitespace (as str.isspace)."""
    space = np.asarray(pc.fill_null(pc.utf8_is_space(texts), True))  # "" is not space
    return np.flatnonzero(space | (np.asarray(pc.binary_length(texts)) == 0))


# -- pass 1 ------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Pass 1 over all source rows (a wide row's list items count one row each): each row's
    prompt code, sample index, reward (None: the files have no rewards) and status (USABLE,
    NON_FINITE or TRUNCATED); ``starts``: each file's first source row (and the total);
    ``flat``: per wide file, each file row's first item; ``texts``: per file, its chunks' first
    source row and texts, where pass 1 kept them (a small pool); ``models``: reward models."""

    code: np.ndarray
    idx: np.ndarray
    reward: np.ndarray | None
    status: np.ndarray
    starts: np.ndarray
    flat: dict[int, np.ndarray] = field(default_factory=dict)
    texts: list[list[tuple[int, pa.Array]]] | None = None
    models: list[str] = field(default_factory=list)


class _Prompts:
    """Prompt codes in order of first use: the id of each and, for rows that carry their
    prompt, its messages (in code order)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.code: dict[str, int] = {}
        self.messages: list[pa.Array] = []

    def intern(self, ids: list[str], msgs: pa.Array | None, create: bool = True) -> np.ndarray:
        """Codes of prompt ids (new ids get the next codes; -1 when not ``create``)."""
        new, out = len(self.ids), np.empty(len(ids), dtype=np.int64)
        for i, p in enumerate(ids):
            c = self.code.get(p)
            if c is None and create:
                c = self.code[p] = len(self.ids)
                self.ids.append(p)
            out[i] = -1 if c is None else c
        if msgs is not None and len(self.ids) > new:
            fresh = np.flatnonzero(out >= new)
            first = np.unique(out[fresh], return_index=True)[1]
            self.messages.append(msgs.take(pa.array(fresh[first])))
        return out


def load_pool(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    prompts: str | Path | None = None,
    exclude_truncated: bool = False,
    max_samples: int | None = None,
    defer_blank: bool = False,
    tick: Callable[[int, int], None] | None = None,
) -> Pool:
    """Read a scored pool at ``path`` (a file, a folder of shards, a glob, or a run folder);
    the texts stay in the files until a pair needs them (``pool.texts``).

    ``columns`` maps a logical field (prompt, prompt_id, responses, rewards, response, reward,
    sample_idx, finish_reason) to the input's column name. ``prompts`` is a prompt table for long
    rows that carry only ``prompt_id``. Non-finite rewards and empty responses are dropped and
    counted; truncated responses (finish_reason ``length``) too when ``exclude_truncated``.
    ``max_samples`` keeps only the first that many samples of each prompt (sample_idx below it):
    the others are not part of the pool at all.

    ``defer_blank``: leave the texts unread — the empty responses are then found while the
    picked texts are read (:meth:`PoolTexts.scan`) and taken out with :meth:`Pool.without`.
    ``tick(done, total)`` follows the files of each pass over them.
    """
    cols = dict(DEFAULT_COLUMNS)
    for k, v in (columns or {}).items():
        if k not in cols:
            raise InputError(f"unknown column key {k!r}; use one of {', '.join(cols)}")
        cols[k] = (v,)
    with quick_memory():
        reader = _Reader(Path(path), str(path), cols, exclude_truncated, max_samples, tick)
        pool = reader.read(prompts)
        if not defer_blank:
            blank = pool.texts.scan(np.zeros(0, np.int64))[2]
            pool = pool.without(blank) if len(blank) else pool
    return pool


@contextmanager
def quick_memory():
    """Meanwhile: Arrow's buffers from jemalloc where pyarrow has it (it reuses freed pages; the
    default mimalloc made reading the texts of 61,135 x 64 responses 1.5x slower), numpy's
    large arrays on 4 KB pages (where the kernel compacts memory for huge pages on demand,
    first touching a fresh array after pyarrow's reads stalled 5-10x longer)."""
    try:  # numpy's own switch (numpy 2: _core, numpy 1: core)
        from numpy._core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage
    except ImportError:
        from numpy.core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage

    huge, pool = _get_madvise_hugepage(), pa.default_memory_pool()
    _set_madvise_hugepage(False)
    with suppress(NotImplementedError):  # a pyarrow built without it
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    try:
        yield
    finally:
        _set_madvise_hugepage(huge)
        pa.set_memory_pool(pool)


@dataclass
class _Reader:
    path: Path
    text: str
    cols: dict
    exclude_truncated: bool
    max_samples: int | None
    tick: Callable | None = None  # progress: tick(files done, files)
    prompts: _Prompts = field(default_factory=_Prompts)

    def read(self, prompts) -> Pool:
        from sweetspot.stages import SCORE

        path = self.path
        samples, scores = SCORE.path(path, "samples"), SCORE.path(path, "scores")
        if path.is_dir() and samples.is_dir():
            scored = scores.is_dir() and [
                p for p in sorted(scores.iterdir()) if p.suffix in (".parquet", ".jsonl")
            ]
            if not scored:
                raise InputError(
                    "this folder has samples but no scores yet: run `sweetspot score --input "
                    f"{path}` first, then pair",
                    file=str(path),
                )
            return self._stage(samples, scored)
        table = Path(prompts) if prompts else None
        if table is None and path.is_dir() and (path / "prompts.parquet").exists():
            table = path / "prompts.parquet"
        files = Files([f for f in table_files(self.text) if f.name != "prompts.parquet"], self.cols)
        if files.layout() == "wide":
            wide = ["prompt", "responses", "rewards"]
            files.resolve(wide, wide)
            return self._assemble(files, self._wide(files), "wide")
        if not files.paths:
            raise InputError("the pool is empty: no rows found", file=self.text)
        files.resolve([*_LONG, "response"], ["sample_idx", "response", "reward"])
        if "prompt" not in files.cols and "prompt_id" not in files.cols:
            raise InputError(
                f"missing column: prompt or prompt_id (found "
                f"{', '.join(files.schema(files.paths[0]).names)})",
                file=str(files.paths[0]),
                field="prompt",
            )
        by_id = "prompt" not in files.cols
        if by_id and table is None:
            raise InputError(
                "rows name prompt_id but no prompt table was given (--prompts FILE)",
                file=str(files.paths[0]),
                field=files.cols["prompt_id"],
            )
        table = background(load_prompt_table, table) if by_id else None
        return self._assemble(files, self._long(files), "long", table)

    # -- reading -----------------------------------------------------------------------------

    def _long(self, files: Files, create: bool = True) -> _Rows:
        """Pass 1 over long rows (one row per response); ``create``: new prompts get codes
        (else -1: score rows of prompts without samples)."""
        key = "prompt" if "prompt" in files.cols else "prompt_id"
        keys = [key, "sample_idx"] + [k for k in ("reward", "reward_model") if k in files.cols]
        if self.exclude_truncated and "finish_reason" in files.cols:
            keys.append("finish_reason")
        hold = 0 < files.bytes_of("response") <= HOLD_TEXT_BYTES  # else read again in pass 2
        models: set[str] = set()

        entries = [0]  # dictionary values of the batches so far

        def shrink(i: int, start: int, b: dict) -> dict:
            _null(files, i, start, b[key], f"missing prompt{' id' * (key == 'prompt_id')}", key)
            return _numbers(files, i, start, _split(b, key, entries), models)

        data, starts, chunk_files = files.read(keys + ["response"] * hold, self.tick, shrink)
        idx = data.pop("sample_idx")
        if (neg := np.flatnonzero(idx < 0)).size:
            _fail(files, *_file_row(starts, int(neg[0])), "sample index must be >= 0", "sample_idx")
        code = self._codes(data.pop(key), data.pop("index", None), files, starts, key, create)
        rows = self._rows(code, idx, data, starts)
        rows.texts = _held(data.get("response"), chunk_files, len(files.paths))
        rows.models = sorted(models)
        return rows

    def _wide(self, files: Files) -> _Rows:
        """Pass 1 over wide rows (one row per prompt, lists of responses and rewards)."""
        hold = 0 < files.bytes_of("responses") <= HOLD_TEXT_BYTES
        entries = [0]

        def shrink(i: int, start: int, b: dict) -> dict:  # list lengths need the responses
            resp, rew = b["responses"], b["rewards"]
            for arr, k in ((resp, "responses"), (rew, "rewards")):
                _null(files, i, start, arr, "missing list", k)
            nt = np.asarray(pc.list_value_length(resp), dtype=np.int64)
            nr = np.asarray(pc.list_value_length(rew), dtype=np.int64)
            if (pos := np.flatnonzero(nt != nr)).size:
                j = int(pos[0])
                msg = f"{nr[j]} rewards for {nt[j]} responses: lists must have equal length"
                _fail(files, i, start + j, msg, "rewards")
            _null(files, i, start, b["prompt"], "missing prompt", "prompt")
            out = {"prompt": b["prompt"], "lens": nt, "reward": pc.list_flatten(rew)}
            out = _numbers(files, i, start, _split(out, "prompt", entries), set())
            return {**out, "response": pc.list_flatten(resp)} if hold else out

        data, file_rows, chunk_files = files.read(
            ["prompt", "responses", "rewards"], self.tick, shrink
        )
        prompts = data.pop("prompt")
        lens = data.pop("lens")
        firsts = np.concatenate([[0], np.cumsum(lens)])
        code = self._codes(prompts, data.pop("index", None), files, file_rows, "prompt")
        code = np.repeat(code, lens)
        idx = np.arange(firsts[-1]) - np.repeat(firsts[:-1], lens)
        rows = self._rows(code, idx, data, firsts[file_rows])
        for i in range(len(files.paths)):
            a, b = file_rows[i], file_rows[i + 1]
            rows.flat[i] = firsts[a : b + 1] - firsts[a]
        rows.texts = _held(data.get("response"), chunk_files, len(files.paths))
        return rows

    def _codes(self, values: pa.ChunkedArray, index, files: Files, starts, key: str, create=True):
        """The prompt code of each row: ``values`` are the rows' prompts, or with ``index`` the
        dictionaries of all batches, one after the other, and each row's place in them (each
        distinct prompt is hashed once); a bad prompt names the first row that has it."""
        values = values.combine_chunks()
        if index is not None:
            distinct = pc.dictionary_encode(values)
            values, entry = distinct.dictionary, np.asarray(distinct.indices)
            used = np.zeros(len(entry), bool)
            used[index] = True
            if not used.all():  # a dictionary may hold values no row uses
                keep = np.zeros(len(values), bool)
                keep[entry[used]] = True
                values, entry = values.filter(pa.array(keep)), (np.cumsum(keep) - 1)[entry]
        if key == "prompt_id":
            ids, msgs = values.to_pylist(), None
        else:

            def bad(j: int, msg: str) -> InputError:
                g = j if index is None else int(np.argmax(entry[index] == j))
                return _error(files, *_file_row(starts, g), msg, key)

            ids, msgs = prompt_messages(values, bad)
        codes = self.prompts.intern(ids, msgs, create).astype(np.int32)
        if index is None:
            return codes
        codes = codes[entry]  # per dictionary entry
        return index if np.array_equal(codes, np.arange(len(codes))) else codes[index]

    def _rows(self, code: np.ndarray, idx: np.ndarray, data: dict, starts: np.ndarray) -> _Rows:
        """The status of pass 1's rows (from their rewards and truncated flags)."""
        status = np.zeros(len(idx), np.int8)  # USABLE
        reward = data.pop("reward", None)
        if reward is not None:
            status[~np.isfinite(reward)] = NON_FINITE
        if (truncated := data.pop("finish_reason", None)) is not None:
            status[(status == USABLE) & truncated] = TRUNCATED
        return _Rows(code, idx, reward, status, starts)

    # -- layouts -----------------------------------------------------------------------------

    def _stage(self, samples: Path, r_paths: list[Path]) -> Pool:
        s_files = Files(table_files(samples), self.cols)
        s_files.resolve(["prompt_id", "sample_idx", "response", "finish_reason"],
                        ["prompt_id", "sample_idx", "response"])  # fmt: skip
        r_files = Files(r_paths, {**self.cols, "reward_model": ("reward_model",)})
        r_files.resolve(["prompt_id", "sample_idx", "reward", "reward_model"],
                        ["prompt_id", "sample_idx", "reward"])  # fmt: skip
        table = background(load_prompt_table, self.path / "prompts.parquet")
        rows = self._long(s_files)
        scores = self._long(r_files, create=False)
        pool = self._assemble(s_files, rows, "stage", table, (r_files, scores))
        pool.reward_models = scores.models
        return pool

    def _join(self, rows: _Rows, scores: tuple[Files, _Rows]) -> np.ndarray:
        """Each sample's reward from the score rows (NaN where a sample has none)."""
        r_files, r = scores
        width = int(max(rows.idx.max(initial=0), r.idx.max(initial=0))) + 1
        key = rows.code * np.int64(width) + rows.idx
        r_key = r.code * np.int64(width) + r.idx
        if len(key) == len(r_key) and np.array_equal(key, r_key):
            return r.reward  # scores written shard by shard beside the samples (no duplicate)
        order = np.argsort(r_key, kind="stable")
        r_sorted = r_key[order]
        if (dup := np.flatnonzero((r_sorted[1:] == r_sorted[:-1]) & (r_sorted[1:] >= 0))).size:
            a, b = order[dup[0]], order[dup[0] + 1]
            pid = self.prompts.ids[r.code[b]]
            self._duplicate(r_files, r.starts, a, b, pid, r.idx[b])
        pos = np.minimum(np.searchsorted(r_sorted, key), max(len(r_sorted) - 1, 0))
        reward = np.full(len(key), np.nan)
        if len(r_sorted):
            hit = r_sorted[pos] == key
            reward[hit] = r.reward[order[pos[hit]]]
        return reward

    def _assemble(self, files: Files, rows: _Rows, layout: str, table=None, scores=None) -> Pool:
        """Group the source rows by prompt in sample order (a sort only when they are not
        already), check each sample is there once, keep the usable ones."""
        codes, idx, starts, flat, held = rows.code, rows.idx, rows.starts, rows.flat, rows.texts
        reward, status = rows.reward, rows.status
        if scores is not None:
            reward = self._join(rows, scores)
            status[~np.isfinite(reward)] = NON_FINITE
        if self.max_samples is not None:
            status[idx >= self.max_samples] = OUTSIDE
        n_prompts = len(self.prompts.ids)
        if table is not None:
            ids, messages = self._from_table(files, codes, starts, table)
        else:
            ids = self.prompts.ids
            msgs = self.prompts.messages
            messages = pa.concat_arrays(msgs) if msgs else pa.array([], MESSAGES_TYPE)
        order = None if _sorted(codes, idx) else np.lexsort((idx, codes))
        c, i = (codes, idx) if order is None else (codes[order], idx[order])
        dup = [] if order is None else np.flatnonzero((c[1:] == c[:-1]) & (i[1:] == i[:-1]))
        if len(dup):  # in order, there is none: each (code, index) is above the last
            a, b = order[dup[0]], order[dup[0] + 1]
            if layout == "wide":
                self._second_row(files, starts, flat, a, b, ids[codes[b]], messages[int(codes[b])])
            self._duplicate(files, starts, a, b, ids[int(codes[b])], int(idx[b]))
        counts = [int(np.count_nonzero(status == k)) for k in range(OUTSIDE + 1)]
        src_row = None
        if counts[USABLE] < len(status) or order is not None:
            keep = status == USABLE if order is None else status[order] == USABLE
            src_row = np.flatnonzero(keep) if order is None else order[keep]
            c, idx, reward = c[keep], idx[src_row], reward[src_row]
        n = np.diff(np.searchsorted(c, np.arange(n_prompts + 1, dtype=c.dtype)))  # c is sorted
        del i, codes, rows
        dropped = {r: counts[j + 1] for j, r in enumerate(RESPONSE_DROPS)}
        dropped["empty_response"] = 0
        if not self.exclude_truncated:
            del dropped["truncated"]
        key = "responses" if layout == "wide" else "response"
        return Pool(
            prompt_ids=np.array(ids, dtype=object),
            messages=messages,
            offsets=np.concatenate([[0], np.cumsum(n)]).astype(np.int64),
            sample_idx=idx,
            rewards=reward,
            src_row=src_row,
            texts=PoolTexts(files, starts, key, src_row, flat, held, tick=self.tick),
            responses_in=len(status) - counts[OUTSIDE],
            dropped=dropped,
            layout=layout,
            source=self.text,
            status=status,
        )

    def _from_table(self, files: Files, codes, starts, table: Future):
        """Ids and messages of the prompt codes from the prompt table (read meanwhile); an id
        it lacks is an error naming the first row that uses it."""
        t_ids, t_msgs = table.result()
        pos = {p: i for i, p in enumerate(t_ids)}
        ids = self.prompts.ids
        missing = [c for c, p in enumerate(ids) if p not in pos]
        if missing:
            g = int(np.argmax(codes == missing[0]))
            _fail(files, *_file_row(starts, g), f"prompt id {ids[missing[0]]} is not in the "
                  "prompt table", "prompt_id")  # fmt: skip
        return ids, t_msgs.take(pa.array([pos[p] for p in ids], pa.int64()))

    def _duplicate(self, files: Files, starts, a: int, b: int, pid: str, idx: int) -> None:
        fa, ra = located(files.paths[(i := _file_row(starts, a))[0]], i[1])
        fb, rb = located(files.paths[(j := _file_row(starts, b))[0]], j[1])
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({pid}, {idx}); first seen in {fa} row {ra}",
            file=fb,
            row=rb,
            field="sample_idx",
        )

    def _second_row(self, files: Files, starts, flat, a: int, b: int, pid, messages) -> None:
        """A wide file has one row per prompt: name the prompt and both rows."""
        where = []
        for g in (a, b):
            i, local = _file_row(starts, g)
            where.append(located(files.paths[i], int(np.searchsorted(flat[i], local, "right")) - 1))
        (fa, ra), (fb, rb) = where
        content = messages.as_py()[-1]["content"]
        shown = content if len(content) <= 60 else content[:57] + "..."
        raise InputError(
            f"prompt {pid} ({shown!r}) has a "
            f"second row; first seen in {'row' if fa == fb else f'{fa} row'} {ra} (a wide file "
            "has one row per prompt)",
            file=fb,
            row=rb,
            field=files.field_name("prompt"),
        )


def background(fn, *args) -> Future:
    """``fn(*args)`` in a thread of its own (its error is raised by ``result()``)."""
    ex = ThreadPoolExecutor(1)
    future = ex.submit(fn, *args)
    ex.shutdown(wait=False)
    return future


def _sorted(codes: np.ndarray, idx: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Whether the rows are in (code, sample index) order with no repeat (in chunks: no
    temporary the size of the pool)."""
    for a in range(0, max(len(codes) - 1, 0), chunk):
        c, i = codes[a : a + chunk + 1], idx[a : a + chunk + 1]
        step = np.diff(c)
        if not np.all((step > 0) | ((step == 0) & (np.diff(i) > 0))):
            return False
    return True


def _split(b: dict, key: str, entries: list[int]) -> dict:
    """A batch whose prompts are a dictionary: the dictionary stays (a part of one over all
    batches, ``entries[0]`` values so far) and ``index`` (numpy) places each row in it."""
    d = b[key]
    if not pa.types.is_dictionary(d.type):
        return b
    index = np.add(d.indices.to_numpy(zero_copy_only=False), entries[0], dtype=np.int32)
    entries[0] += len(d.dictionary)
    return {**b, key: d.dictionary, "index": index}


def _numbers(files: Files, i: int, start: int, b: dict, models: set[str]) -> dict:
    """A batch's numbers as numpy arrays (copied into place by :meth:`Files.read`):
    sample indices (a missing one is an error), rewards (a missing one NaN: dropped as not
    finite) and truncated flags (finish_reason ``length``); reward models go into ``models``."""
    out = dict(b)
    if (idx := b.get("sample_idx")) is not None:
        _null(files, i, start, idx, "missing sample index", "sample_idx")
        out["sample_idx"] = idx.to_numpy(zero_copy_only=False)
    if (r := b.get("reward")) is not None:
        r = pc.fill_null(r, np.nan) if r.null_count else r
        out["reward"] = r.to_numpy(zero_copy_only=False)
    if (fr := b.get("finish_reason")) is not None:
        fr = fr.dictionary_decode() if pa.types.is_dictionary(fr.type) else fr
        out["finish_reason"] = np.asarray(pc.fill_null(pc.equal(fr, "length"), False))
    if (m := out.pop("reward_model", None)) is not None and len(m) > m.null_count:
        m = m.dictionary if pa.types.is_dictionary(m.type) else pc.unique(m)
        models.update(str(v) for v in m.to_pylist() if v is not None)
    return out


def _held(texts: pa.ChunkedArray | None, chunk_files: list[int], n_files: int):
    """Per file, the first source row and texts of each of its chunks (None: none kept)."""
    if texts is None:
        return None
    held: list[list[tuple[int, pa.Array]]] = [[] for _ in range(n_files)]
    g = 0
    for i, chunk in zip(chunk_files, texts.chunks):
        held[i].append((g, chunk))
        g += len(chunk)
    return held


def _file_row(starts: np.ndarray, g: int) -> tuple[int, int]:
    i = int(np.searchsorted(starts, g, "right")) - 1
    return i, int(g - starts[i])


def _null(files: Files, i: int, start: int, arr: pa.Array, msg: str, key: str) -> None:
    if arr.null_count:
        _fail(files, i, start + int(np.flatnonzero(np.asarray(arr.is_null()))[0]), msg, key)


def _error(files: Files, i: int, row: int, msg: str, key: str) -> InputError:
    """The error of row ``row`` (0-based) of file ``i``, naming file, row (JSONL: line), field."""
    file, line = located(files.paths[i], row)
    return InputError(msg, file=file, row=line, field=files.field_name(key))


def _fail(files: Files, i: int, row: int, msg: str, key: str) -> None:
    raise _error(files, i, row, msg, key)


__all__ = [
    "FetchedTexts",
    "Pool",
    "PoolTexts",
    "TextSource",
    "background",
    "blank_rows",
    "in_threads",
    "load_pool",
    "quick_memory",
]
