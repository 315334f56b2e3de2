"""The input files of the pair stage, read by pyarrow: which files, which layout, which columns.

Parquet files are read column by column (only the fields asked for; byte-array key columns as
dictionaries, so each distinct prompt is seen once), all files in one scan of Arrow's dataset
scanner (:meth:`Files.read`) or one file at a time (:meth:`Files.batches`); JSONL files by
pyarrow's JSON reader with the types the stage needs. Every batch comes as a dict of logical
fields (a field a file lacks is all nulls), numbered by its file and its first row there, so
that any error can name file, row (JSONL: line) and field.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from sweetspot.errors import InputError
from sweetspot.io import check_jsonl_rows, jsonl_line_numbers, jsonl_schema, open_jsonl
from sweetspot.pairs.prompts import DEFAULT_COLUMNS, is_list, is_text, json_error, pick

BATCH_BYTES = 32 << 20  # a Parquet batch holds about this much of the columns read
_TYPES = {
    "prompt_id": pa.string(),
    "sample_idx": pa.int64(),
    "response": pa.string(),
    "reward": pa.float64(),
    "finish_reason": pa.string(),
    "reward_model": pa.string(),
    "responses": pa.list_(pa.string()),
    "rewards": pa.list_(pa.float64()),
}
_DICTIONARY = ("prompt", "prompt_id", "finish_reason", "reward_model")  # few distinct values


def table_files(path: str | Path) -> list[Path]:
    """The files at ``path``: a file, the table files of a folder, or a glob pattern."""
    from sweetspot.io import list_table_files

    text = str(path)
    if any(c in text for c in "*?[") and not Path(text).exists():
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not files:
            raise InputError("no file matches the pattern", file=text)
        return files
    return list_table_files(path)


@dataclass
class Files:
    """Input files of one kind (all Parquet and/or JSONL) and the columns they use."""

    paths: list[Path]
    columns: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    cols: dict[str, str] = field(default_factory=dict)  # logical field -> column name
    schemas: dict[Path, pa.Schema] = field(default_factory=dict)
    meta: dict[Path, object] = field(default_factory=dict)  # Parquet footers

    def schema(self, f: Path) -> pa.Schema:
        if f not in self.schemas:
            if f.suffix == ".parquet":
                import pyarrow.parquet as pq

                try:
                    self.meta[f] = pq.read_metadata(f)
                    self.schemas[f] = self.meta[f].schema.to_arrow_schema()
                except (pa.ArrowInvalid, OSError) as e:
                    raise InputError(f"cannot read Parquet ({e})", file=str(f)) from None
            else:
                try:
                    self.schemas[f] = jsonl_schema(f)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    raise json_error(str(e), f, self.columns) from None
        return self.schemas[f]

    def layout(self) -> str:
        """``wide`` or ``long`` (every file the same; files without columns are left out)."""
        found = None
        self.paths = [f for f in self.paths if self.schema(f).names]
        for f in self.paths:
            names = self.schema(f).names
            this = (
                "wide"
                if any(pick(names, self.columns, k) for k in ("responses", "rewards"))
                else "long"
            )
            if found not in (None, this):
                raise InputError(
                    f"file is in the {this} layout, earlier files in the {found} one", file=str(f)
                )
            found = this
        return found or "wide"

    def resolve(self, keys: list[str], required: list[str]) -> None:
        """Map each logical field of ``keys`` to its column (the first name found), check the
        types of Parquet columns; a ``required`` field missing from a file names the file."""
        for f in self.paths:
            schema = self.schema(f)
            for k in keys:
                c = pick(schema.names, self.columns, k)
                if c is None and k in required:
                    raise InputError(
                        f"missing column (looked for {', '.join(self.columns[k])}; found "
                        f"{', '.join(schema.names)})",
                        file=str(f),
                        field=k,
                    )
                if c is None:
                    continue
                self.cols.setdefault(k, c)
                t = schema.field(c).type
                t = t.value_type if pa.types.is_dictionary(t) else t
                problem = _type_problem(k, t) if f.suffix == ".parquet" else None
                if problem:
                    raise InputError(problem, file=str(f), row=1, field=c)

    def row_counts(self) -> np.ndarray | None:
        """Rows of each file, when all are Parquet (known before reading)."""
        if not all(f in self.meta for f in self.paths):
            return None
        return np.array([self.meta[f].num_rows for f in self.paths], dtype=np.int64)

    def bytes_of(self, key: str) -> int:
        """Bytes of field ``key`` in all files (Parquet: uncompressed, from the footers; JSONL:
        the whole file's)."""
        if key not in self.cols:
            return 0
        return sum(_column_bytes(self.meta[f], {self.cols[key]}) if f in self.meta
                   else f.stat().st_size for f in self.paths)  # fmt: skip

    def batches(self, f: Path, keys: list[str]) -> Iterator[tuple[int, dict]]:
        """``(first row, {field: array})`` for the fields ``keys`` of file ``f``, in row order."""
        schema = self.schema(f)
        cols = {k: self.cols[k] for k in keys if self.cols.get(k) in schema.names}
        start = 0
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(
                f,
                metadata=self.meta.get(f),
                memory_map=True,
                read_dictionary=[
                    c for k, c in cols.items() if k in _DICTIONARY and is_text(schema.field(c).type)
                ],
            ) as pf:
                meta = pf.metadata
                size = _column_bytes(meta, set(cols.values()))
                rows = int(
                    np.clip(BATCH_BYTES * max(meta.num_rows, 1) // max(size, 1), 1024, 1 << 16)
                )
                for b in pf.iter_batches(rows, columns=list(dict.fromkeys(cols.values())),
                                         use_threads=False):  # fmt: skip
                    yield start, self._fields(b, cols, keys)
                    start += b.num_rows
            return
        read = pa.schema([pa.field(c, self._json_type(k, f)) for k, c in cols.items()])
        try:
            for b in open_jsonl(f, schema=read):
                yield start, self._fields(b, cols, keys)
                start += b.num_rows
            check_jsonl_rows(f, start)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise json_error(str(e), f, self.used_columns) from None

    def read(
        self, keys: list[str], tick: Callable | None = None, shrink: Callable | None = None
    ) -> tuple[dict[str, pa.ChunkedArray], np.ndarray, list[int]]:
        """The fields ``keys`` of all files as one chunked array each over every row, files in
        order (nulls where a file lacks a field), the first row of each file (and the total)
        and the file of each chunk. Parquet files are read by Arrow's dataset scanner (its
        threads, no Python per file), JSONL files one by one. ``shrink(file, first row,
        fields)`` may replace each batch's fields as it comes (numpy arrays are concatenated);
        ``tick(files done, files)``."""
        types = {k: self._type(k) for k in keys if k in self.cols}
        counts = self.row_counts()  # known: numbers go straight into place
        first = None if counts is None else np.concatenate([[0], np.cumsum(counts)])
        out: dict[str, list] = {}
        placed: dict[str, np.ndarray] = {}  # per-row numbers put in place (rows known before)
        rows = np.zeros(len(self.paths) + 1, np.int64)
        chunk_files: list[int] = []

        def add(i: int, start: int, b: dict) -> int:
            n = len(next(iter(b.values())))
            for k in keys:  # one type per field, whichever file it comes from
                if k not in types or b[k].type != types[k]:
                    b[k] = b[k].cast(types[k]) if k in types else pa.nulls(n)
            for k, v in (shrink(i, start, b) if shrink else b).items():
                if isinstance(v, np.ndarray) and first is not None and len(v) == n:
                    if k not in placed:
                        placed[k] = np.empty(int(first[-1]), v.dtype)
                    placed[k][first[i] + start : first[i] + start + n] = v
                else:
                    out.setdefault(k, []).append(v)
            return n

        for i, start, b in self._all_batches(types, tick):
            rows[i + 1] += add(i, start, b)
            chunk_files.append(i)
        if not chunk_files:  # no row: empty fields of the same kinds
            first = None
            add(0, 0, {k: pa.array([], types.get(k, pa.null())) for k in keys})
        data = placed
        for k in list(out):  # the other numpy parts joined one field at a time
            v = out.pop(k)
            data[k] = np.concatenate(v) if isinstance(v[0], np.ndarray) else pa.chunked_array(v)
        return data, np.cumsum(rows), chunk_files

    def _all_batches(self, types: dict, tick: Callable | None) -> Iterator[tuple[int, int, dict]]:
        """``(file, first row, fields)`` of every batch of every file, in order."""
        done = 0
        if not all(f.suffix == ".parquet" for f in self.paths):
            for i, f in enumerate(self.paths):
                for start, b in self.batches(f, list(types)):
                    yield i, start, b
                if tick:
                    tick(i + 1, len(self.paths))
            return
        import pyarrow.dataset as ds

        names = {c: k for k, c in self.cols.items() if k in types}
        fmt = ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(
                dictionary_columns=[c for c, k in names.items() if pa.types.is_dictionary(types[k])]
            )
        )
        schema = pa.schema([pa.field(c, types[k]) for c, k in names.items()])
        number = {str(f): i for i, f in enumerate(self.paths)}
        data = ds.dataset([str(f) for f in self.paths], schema=schema, format=fmt)
        last, start = -1, 0
        for tagged in data.scanner(columns=list(names), batch_size=1 << 16).scan_batches():
            i, b = number[tagged.fragment.path], tagged.record_batch
            if i != last:
                last, start, done = i, 0, done + 1
                if tick:
                    tick(done, len(self.paths))
            yield i, start, {names[c]: b.column(c) for c in names}
            start += b.num_rows
        if tick:
            tick(len(self.paths), len(self.paths))

    def _type(self, key: str) -> pa.DataType:
        """The type of field ``key`` over all files: integers and floats widened, few-valued
        texts as dictionaries, else the type of the first file that has it."""
        if key in ("sample_idx", "reward", "rewards"):
            return _TYPES[key]
        first = next(self.schema(f).field(self.cols[key]).type for f in self.paths
                     if self.cols[key] in self.schema(f).names)  # fmt: skip
        first = first.value_type if pa.types.is_dictionary(first) else first
        if key in _DICTIONARY and is_text(first):
            return pa.dictionary(pa.int32(), pa.string())
        return first

    def _json_type(self, key: str, f: Path) -> pa.DataType:
        if key != "prompt":
            return _TYPES[key]
        t = self.schema(f).field(self.cols[key]).type  # a string or a message list
        return t if is_text(t) or is_list(t) else pa.string()  # else the reader names the line

    @staticmethod
    def _fields(b: pa.RecordBatch, cols: dict, keys: list[str]) -> dict:
        return {k: b.column(cols[k]) if k in cols else pa.nulls(b.num_rows) for k in keys}

    @property
    def used_columns(self) -> dict:
        return {**self.columns, **{k: (v,) for k, v in self.cols.items()}}

    def field_name(self, key: str) -> str:
        return self.cols.get(key) or (self.columns[key][0] if len(self.columns[key]) == 1 else key)


def _column_bytes(meta, names: set[str]) -> int:
    """Uncompressed bytes of the columns ``names`` in a Parquet footer."""
    return sum(
        c.total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in (meta.row_group(g).column(j) for j in range(meta.num_columns))
        if c.path_in_schema.split(".")[0] in names
    )


def _type_problem(key: str, t: pa.DataType) -> str | None:
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if pa.types.is_null(t):
        return None
    if key == "sample_idx" and not pa.types.is_integer(t):
        return f"sample index must be an integer, got {t}"
    if key == "reward" and not numeric:
        return f"reward is not a number (column of type {t})"
    if key in ("response", "prompt_id", "finish_reason") and not is_text(t):
        return f"{key} must be a string, got {t}"
    if key in ("responses", "rewards") and not is_list(t):
        return f"must be a list, got {t}"
    return None


def located(file: Path | str, row: int) -> tuple[str, int]:
    """A user's (file, row) of a 0-based row: 1-based, and the line of a JSONL file."""
    file = str(file)
    if file.endswith(".parquet"):
        return file, row + 1
    return file, jsonl_line_numbers(file, [row])[0]


__all__ = ["BATCH_BYTES", "Files", "located", "table_files"]
