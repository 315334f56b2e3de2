"""The input files of a pool, read as a stream of record batches of the columns a pass needs.

Parquet files are read batch by batch (only the columns asked for, and only the row groups that
hold wanted rows); JSONL files with pyarrow's JSON reader in blocks. Neither ever holds a whole
file's text, and no per-row line number is kept: a row's line is found when an error needs it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError
from sweetspot.io import (
    check_jsonl_rows,
    jsonl_line_numbers,
    jsonl_problem,
    jsonl_schema,
    open_jsonl,
)

# Uncompressed bytes of the requested columns per batch: small enough to bound memory, large
# enough that per-batch overhead does not show.
BATCH_BYTES = 32 << 20
MAX_BATCH_ROWS = 1 << 20
JSON_BLOCK_BYTES = 16 << 20  # bytes of JSON text per block of pyarrow's JSON reader
# Input files read at once by worker threads (Arrow decodes outside the GIL).
READ_WORKERS = max(1, min(4, os.cpu_count() or 1))


class JsonReadError(Exception):
    """pyarrow's JSON reader rejected a file; the caller locates the bad line and field."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass
class SourceFile:
    """One Parquet or JSONL input file."""

    path: Path

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix == ".parquet"

    def __str__(self) -> str:
        return str(self.path)

    @cached_property
    def metadata(self) -> pq.FileMetaData:
        """The Parquet footer, read once (every pass reopens the file with it)."""
        try:
            return pq.read_metadata(self.path)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"cannot read Parquet ({e})", file=str(self.path)) from None

    @cached_property
    def schema(self) -> pa.Schema:
        """The file's columns (JSONL: as pyarrow infers them from the first block)."""
        if self.is_parquet:
            return self.metadata.schema.to_arrow_schema()
        try:
            return jsonl_schema(self.path)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise JsonReadError(self.path, str(e)) from None

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)

    def batches(
        self,
        columns: list[str],
        types: dict[str, pa.DataType] | None = None,
        rows: np.ndarray | None = None,
        dictionary: list[str] | None = None,
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """``(first_row, batch)`` over the file, with only ``columns``.

        ``types`` fixes a JSONL column's type (others keep the type inferred from the first
        block). ``rows`` (sorted 0-based row numbers): Parquet reads only the row groups that
        hold one of them (batches of skipped groups are not yielded; ``first_row`` stays exact).
        ``dictionary``: Parquet string columns to read dictionary-encoded (keys repeated on
        many rows then cost an index each, not a string).
        """
        if self.is_parquet:
            yield from self._parquet_batches(columns, rows, dictionary or [])
        else:
            yield from self._jsonl_batches(columns, types or {})

    def _parquet_batches(
        self, columns: list[str], rows: np.ndarray | None, dictionary: list[str]
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        try:
            meta = self.metadata
            with pq.ParquetFile(self.path, metadata=meta, read_dictionary=dictionary or None) as pf:
                sizes = np.array(
                    [meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64
                )
                starts = np.concatenate([[0], np.cumsum(sizes)])
                groups = np.arange(meta.num_row_groups)
                if rows is not None:
                    groups = np.unique(np.searchsorted(starts, rows, side="right") - 1)
                if not len(groups):
                    return
                batch_rows = _batch_rows(meta, columns, groups)
                # The stream runs through the chosen groups back to back, and a batch may span
                # two of them: cut batches where the stream jumps over skipped groups.
                jump = np.flatnonzero(np.diff(groups) != 1) + 1
                first_groups = groups[np.concatenate([[0], jump])]
                run_sizes = np.add.reduceat(sizes[groups], np.concatenate([[0], jump]))
                run_file = starts[first_groups]
                run_stream = np.concatenate([[0], np.cumsum(run_sizes)])
                pos = 0
                for batch in pf.iter_batches(
                    batch_size=batch_rows, row_groups=groups.tolist(), columns=columns
                ):
                    while batch.num_rows:
                        k = int(np.searchsorted(run_stream, pos, side="right") - 1)
                        take = int(min(batch.num_rows, run_stream[k + 1] - pos))
                        part = batch if take == batch.num_rows else batch.slice(0, take)
                        yield int(run_file[k] + pos - run_stream[k]), part
                        batch = batch.slice(take)
                        pos += take
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"cannot read Parquet ({e})", file=str(self.path)) from None

    def _jsonl_batches(
        self, columns: list[str], types: dict[str, pa.DataType]
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        inferred = self.schema
        fields = []
        for c in columns:
            t = types.get(c)
            if t is None:
                t = inferred.field(c).type if c in inferred.names else pa.null()
            fields.append(pa.field(c, t))
        pos = 0
        try:
            for batch in open_jsonl(
                self.path, schema=pa.schema(fields), block_size=JSON_BLOCK_BYTES
            ):
                yield pos, batch.select(columns)
                pos += batch.num_rows
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise JsonReadError(self.path, str(e)) from None
        check_jsonl_rows(self.path, pos)

    def lines(self, rows: np.ndarray | list[int]) -> list[int]:
        """The row numbers a user sees (1-based; JSONL: the line) of 0-based rows."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if self.is_parquet:
            return [int(r) + 1 for r in rows]
        return jsonl_line_numbers(self.path, rows)

    def line(self, row: int) -> int:
        return self.lines([row])[0]

    def json_problem(self) -> InputError | None:
        """The first line that is not a JSON object (JSONL only)."""
        return None if self.is_parquet else jsonl_problem(self.path)


def _batch_rows(meta: pq.FileMetaData, columns: list[str], groups: np.ndarray) -> int:
    """Rows per batch so that a batch of ``columns`` holds about ``BATCH_BYTES``."""
    nbytes, nrows = 0, 0
    for g in groups[:8]:
        rg = meta.row_group(int(g))
        nrows += rg.num_rows
        for i in range(rg.num_columns):
            col = rg.column(i)
            if col.path_in_schema.split(".")[0] in columns:
                nbytes += col.total_uncompressed_size
    per_row = max(1.0, nbytes / max(1, nrows))
    return int(min(MAX_BATCH_ROWS, max(1, BATCH_BYTES // per_row)))


def map_ordered(fn: Callable, items: Iterable, workers: int | None = None) -> Iterator:
    """``map(fn, items)`` with ``workers`` threads reading ahead (default ``READ_WORKERS``);
    results (and errors) come in the order of ``items``, and only a few wait at a time."""
    items = list(items)
    workers = READ_WORKERS if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    ex = ThreadPoolExecutor(workers, thread_name_prefix="sweetspot-read")
    try:
        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append(ex.submit(fn, item))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            for item in it:
                pending.append(ex.submit(fn, item))
                break
            yield result
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
