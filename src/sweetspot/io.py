"""Reading and writing tables: JSONL or Parquet, a file or a folder of shards; atomic writes."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json")
# A chat message and a conversation, as stored in every table (prompts, pairs).
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a half-written file, and a killed writer leaves at most a ``.tmp-*`` file.
    The file gets the permissions of any new file of the user (``0666`` less the umask, so
    usually ``0644``): the temporary file is created empty with that mode before the block runs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> Path:
    """Create an empty, new ``.tmp-<name>.<random>`` file beside ``path``; the kernel applies the
    umask to mode 0666 (``tempfile.mkstemp`` would make it 0600)."""
    for _ in range(100):
        tmp = path.parent / f".tmp-{path.name}.{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def write_bytes_atomic(
    path: str | os.PathLike, data: bytes | memoryview, *, sync: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically; with ``sync`` the bytes reach the disk before the
    rename, so a crash of the machine never leaves a renamed but empty file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (numpy values and paths allowed)."""
    write_text_atomic(
        path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    )


def _json_default(o: object) -> object:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_table(table: pa.Table, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write ``table`` atomically as Parquet or JSONL (chosen by ``fmt`` or the suffix)."""
    path = Path(path)
    fmt = fmt or ("jsonl" if path.suffix in (".jsonl", ".json") else "parquet")
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        elif fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in table.to_pylist():
                    f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        else:
            raise ValueError(f"unknown format {fmt!r}: use parquet or jsonl")
    return path


def list_table_files(path: str | os.PathLike) -> list[Path]:
    """The table files at ``path``: the file itself, or the sorted shards of a folder."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", file=str(path))
    if path.is_file():
        return [path]
    files = sorted(
        p for p in path.iterdir() if p.suffix in TABLE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise InputError("folder holds no .parquet or .jsonl files", file=str(path))
    return files


def read_jsonl(path: Path) -> pa.Table:
    """Read a JSONL file; a line that is not a JSON object is an error naming the file and line."""
    table = read_jsonl_rows(path)[2]
    if table is None:
        raise InputError("rows do not share one schema (a field changes type)", file=str(path))
    return table


def read_jsonl_rows(
    path: Path, *, table: bool = True
) -> tuple[list[dict], list[int], pa.Table | None]:
    """Read a JSONL file: its rows, the 1-based line number of each, and the Arrow table.

    A line that is not a JSON object is an error naming the file and line; rows whose types do not
    fit one schema (or ``table=False``) give ``None`` for the table, so the caller can find the
    offending row and field.
    """
    rows = []
    lines = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg})", file=str(path), row=lineno) from None
            if not isinstance(row, dict):
                raise InputError("a line must be a JSON object", file=str(path), row=lineno)
            rows.append(row)
            lines.append(lineno)
    if not table:
        return rows, lines, None
    if not rows:
        return rows, lines, pa.table({})
    try:
        return rows, lines, pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return rows, lines, None


def read_table_file(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read one Parquet or JSONL file into an Arrow table."""
    if path.suffix == ".parquet":
        try:
            schema = pq.read_schema(path)
            cols = [c for c in columns if c in schema.names] if columns else None
            return pq.read_table(path, columns=cols)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"cannot read Parquet ({e})", file=str(path)) from None
    table = read_jsonl(path)
    if columns:
        table = table.select([c for c in columns if c in table.column_names])
    return table
