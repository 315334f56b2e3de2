"""The input of the pair stage as DuckDB relations: which files, which layout, which columns.

Parquet files are scanned by DuckDB itself (``read_parquet``: projections, parallel reads,
``filename`` and ``file_row_number`` for errors). JSONL files are parsed by pyarrow's JSON
reader with the types the stage needs and streamed into DuckDB with their row numbers: DuckDB's
own JSON reader casts silently (``1.5`` becomes sample 2, ``"3"`` a reward of 3.0) and counts
lines without the blank ones, so a bad row could not be named. Every relation has the columns
``file``, ``row`` (0-based within the file) and the logical fields it was asked for.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from sweetspot.errors import InputError
from sweetspot.io import check_jsonl_rows, jsonl_line_numbers, jsonl_schema, open_jsonl
from sweetspot.pairs.prompts import DEFAULT_COLUMNS, is_list, is_text, json_error, pick

# Whitespace as Python's str.isspace() sees it (a response of only these is empty).
BLANK = (
    r"[\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]*"
)
_TYPES = {
    "prompt_id": pa.string(),
    "sample_idx": pa.int64(),
    "response": pa.string(),
    "reward": pa.float64(),
    "finish_reason": pa.string(),
    "responses": pa.list_(pa.string()),
    "rewards": pa.list_(pa.float64()),
}


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


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@dataclass
class Files:
    """Input files of one kind (all Parquet and/or JSONL) and the columns they use."""

    paths: list[Path]
    cols: dict[str, str] = field(default_factory=dict)  # logical field -> column name
    schemas: dict[Path, pa.Schema] = field(default_factory=dict)
    failure: InputError | None = None  # why a JSONL file could not be read (file, line, field)

    def schema(self, f: Path, cols: dict) -> pa.Schema:
        if f not in self.schemas:
            if f.suffix == ".parquet":
                import pyarrow.parquet as pq

                try:
                    self.schemas[f] = pq.read_schema(f)
                except (pa.ArrowInvalid, OSError) as e:
                    raise InputError(f"cannot read Parquet ({e})", file=str(f)) from None
            else:
                try:
                    self.schemas[f] = jsonl_schema(f)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    raise json_error(str(e), f, cols) from None
        return self.schemas[f]

    def resolve(self, cols: dict, keys: list[str], required: list[str]) -> None:
        """Map each logical field of ``keys`` to its column (the first name found in a file);
        a ``required`` field missing from a file is an error naming the file."""
        for f in self.paths:
            names = self.schema(f, cols).names
            for k in keys:
                c = pick(names, cols, k)
                if c is not None:
                    self.cols.setdefault(k, c)
                elif k in required:
                    raise InputError(
                        f"missing column (looked for {', '.join(cols[k])}; found "
                        f"{', '.join(names)})",
                        file=str(f),
                        field=k,
                    )

    def check_types(self) -> None:
        """Parquet columns of a type the stage cannot read are an error naming file and field
        (JSONL values are checked while they are parsed)."""
        for f in self.paths:
            if f.suffix != ".parquet":
                continue
            schema = self.schemas[f]
            for k, c in self.cols.items():
                if c not in schema.names:
                    continue
                t = schema.field(c).type
                if pa.types.is_dictionary(t):
                    t = t.value_type
                problem = _type_problem(k, t)
                if problem:
                    raise InputError(problem, file=str(f), row=1, field=c)

    def open(self, con, cols: dict, keys: list[str], required: list[str], name: str) -> str:
        """Resolve the columns of ``keys``, check their types and register the view ``name``."""
        self.resolve(cols, keys, required)
        self.check_types()
        return self.relation(con, keys, name)

    def layout(self, cols: dict) -> str:
        """``wide`` or ``long`` (every file the same; files without columns are left out)."""
        found = None
        for f in self.paths:
            names = self.schema(f, cols).names
            if not names:
                continue
            this = "wide" if any(pick(names, cols, k) for k in ("responses", "rewards")) else "long"
            if found not in (None, this):
                raise InputError(
                    f"file is in the {this} layout, earlier files in the {found} one", file=str(f)
                )
            found = this
        self.paths = [f for f in self.paths if self.schema(f, cols).names]
        return found or "wide"

    def relation(self, con, keys: list[str], name: str) -> str:
        """Register the files as view ``name`` with ``file``, ``row`` and the fields ``keys``
        (a field a file lacks is NULL); returns ``name``."""
        parts = []
        parquet = [f for f in self.paths if f.suffix == ".parquet"]
        if parquet:
            sel = ", ".join(
                f'"{self.cols[k]}" AS {k}' if k in self.cols else f"NULL AS {k}" for k in keys
            )
            files = "[" + ", ".join(sql_str(str(f)) for f in parquet) + "]"
            parts.append(
                f"SELECT filename AS file, file_row_number AS row, {sel} FROM read_parquet("
                f"{files}, filename=true, file_row_number=true, union_by_name=true)"
            )
        jsonl = [f for f in self.paths if f.suffix != ".parquet"]
        if jsonl:
            con.register(f"{name}_json", _Fresh(lambda: self._jsonl_reader(jsonl, keys)))
            parts.append(f"SELECT * FROM {name}_json")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS " + " UNION ALL BY NAME ".join(parts))
        return name

    def _jsonl_reader(self, files: list[Path], keys: list[str]) -> pa.RecordBatchReader:
        fields = [pa.field("file", pa.string()), pa.field("row", pa.int64())]
        types = {}
        for k in keys:
            t = _TYPES.get(k)
            if k == "prompt":  # a string or a message list, as the first file has it
                t = next(
                    (
                        s.field(self.cols[k]).type
                        for s in (self.schemas[f] for f in files)
                        if self.cols.get(k) in s.names
                    ),
                    pa.string(),
                )
                if not (is_text(t) or is_list(t)):
                    t = pa.string()  # e.g. a number: the reader names the line
            types[k] = t
            fields.append(pa.field(k, t))
        schema = pa.schema(fields)

        def batches() -> Iterator[pa.RecordBatch]:
            for f in files:
                cols = {c: k for k, c in self.cols.items() if k in keys}
                read = pa.schema([pa.field(c, types[k]) for c, k in cols.items()])
                row = 0
                try:
                    for b in open_jsonl(f, schema=read):
                        arrays = [pa.repeat(pa.scalar(str(f)), b.num_rows)]
                        arrays.append(pa.array(np.arange(row, row + b.num_rows)))
                        for k in keys:
                            c = self.cols.get(k)
                            has = c is not None and c in b.schema.names
                            arrays.append(b.column(c) if has else pa.nulls(b.num_rows, types[k]))
                        row += b.num_rows
                        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
                    check_jsonl_rows(f, row)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    self.failure = json_error(str(e), f, self.cols_tuple)
                    raise self.failure from None
                except InputError as e:
                    self.failure = e
                    raise

        return pa.RecordBatchReader.from_batches(schema, batches())

    @property
    def cols_tuple(self) -> dict:
        out = dict(DEFAULT_COLUMNS)
        out.update({k: (v,) for k, v in self.cols.items()})
        return out


class _Fresh:
    """An Arrow stream that DuckDB may scan any number of times (a new reader each scan)."""

    def __init__(self, make) -> None:
        self.make = make

    def __arrow_c_stream__(self, requested_schema=None):
        return self.make().__arrow_c_stream__(requested_schema)


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


def located(file: str, row: int) -> tuple[str, int]:
    """A user's (file, row): 1-based, and the line of a JSONL file."""
    if file.endswith(".parquet"):
        return file, row + 1
    return file, jsonl_line_numbers(file, [row])[0]


def first_row(con, view: str, where: str, params: list | None = None) -> tuple[str, int] | None:
    """The first (file, row) of ``view`` where ``where`` holds, as a user names it."""
    got = con.sql(
        f"SELECT file, row FROM {view} WHERE {where} ORDER BY file, row LIMIT 1", params=params
    ).fetchall()
    return located(*got[0]) if got else None


def rows_of(con, view: str, where: str, params: list | None = None) -> list[tuple[str, int]]:
    """Every (file, row) of ``view`` where ``where`` holds, in file order."""
    got = con.sql(
        f"SELECT file, row FROM {view} WHERE {where} ORDER BY file, row", params=params
    ).fetchall()
    return [located(f, r) for f, r in got]


__all__ = ["BLANK", "Files", "first_row", "located", "rows_of", "sql_str", "table_files"]
