"""Reading and writing tables: JSONL or Parquet, a file or a folder of shards; atomic writes."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
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
def atomic_path(path: str | os.PathLike, *, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a half-written file, and a killed writer leaves at most a ``.tmp-*`` file.
    With ``sync`` (the default) the write is durable before it is trusted: the file's bytes reach
    the disk before the rename, and the folder's entry after it, so a power cut leaves either the
    old file or the whole new one, never a renamed but empty one.
    The file gets the permissions of any new file of the user (``0666`` less the umask, so
    usually ``0644``): the temporary file is created empty with that mode before the block runs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        yield tmp
        if sync:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_path(path.parent)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a folder's data to the disk (a folder: its entries, after a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    with atomic_path(path, sync=sync) as tmp, open(tmp, "wb") as f:
        f.write(data)


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


def write_table(
    table: pa.Table,
    path: str | os.PathLike,
    fmt: str | None = None,
    dictionary: Sequence[str] | None = None,
) -> Path:
    """Write ``table`` atomically as Parquet or JSONL (chosen by ``fmt`` or the suffix).
    ``dictionary``: the only Parquet columns (paths such as ``chosen.list.element.role``) to
    dictionary-encode (None: Parquet's default, every column tries it and falls back)."""
    path = Path(path)
    fmt = fmt or ("jsonl" if path.suffix in (".jsonl", ".json") else "parquet")
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            pq.write_table(
                table, tmp, use_dictionary=True if dictionary is None else list(dictionary)
            )
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


JSONL_BLOCK_SIZE = 16 << 20  # bytes of JSON text per block of pyarrow's JSON reader


def _json_error(e: json.JSONDecodeError, lineno: int) -> str:
    return f"not valid JSON: {e.msg} (line {lineno}, column {e.colno})"


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a JSONL file with their 1-based line numbers (Python, line by line:
    for locating errors and for small files)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"not valid UTF-8 (byte {e.start + 1} of the line)", file=str(path), row=lineno
                ) from None
            if line.strip():
                yield lineno, line


def iter_jsonl_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Every row of a JSONL file parsed in Python, with its line number; a line that is not a
    JSON object is an ``InputError`` naming the line and the parser's full reason."""
    for lineno, line in iter_jsonl_lines(path):
        try:
            row = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as e:
            raise InputError(_json_error(e, lineno), file=str(path), row=lineno) from None
        if not isinstance(row, dict):
            raise InputError("a line must be a JSON object", file=str(path), row=lineno)
        yield lineno, row


def jsonl_problem(path: str | os.PathLike) -> InputError | None:
    """The first line of a JSONL file that is not a JSON object (as an ``InputError`` naming the
    file, line and the full reason), or None when every line is one."""
    try:
        for _ in iter_jsonl_rows(path):
            pass
    except InputError as e:
        return e
    return None


def jsonl_line_numbers(path: str | os.PathLike, rows) -> list[int]:
    """The 1-based line numbers of the given 0-based rows of a JSONL file (blank lines do not
    count as rows). Re-scans the file: used when an error needs its line, never per row."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.int64).ravel()
    want = {int(r) for r in rows}
    found: dict[int, int] = {}
    if want:
        last = max(want)
        for i, (lineno, _) in enumerate(iter_jsonl_lines(path)):
            if i in want:
                found[i] = lineno
            if i >= last:
                break
    return [found.get(int(r), int(r) + 1) for r in rows]


def check_jsonl_rows(path: str | os.PathLike, rows: int) -> None:
    """Check that the ``rows`` rows pyarrow's JSON reader found in a JSONL file are its
    non-blank lines, one object per line (so that row i maps to the i-th non-blank line).

    A fast newline count settles it for files without blank lines; otherwise the file is scanned
    line by line, which also names a line holding anything but one JSON object.
    """
    newlines, size, last = 0, 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            newlines += chunk.count(b"\n")
            size += len(chunk)
            last = chunk[-1:]
    if rows == newlines + (1 if size and last != b"\n" else 0):
        return
    lines = 0
    for _ in iter_jsonl_rows(path):  # raises on a line that is not exactly one object
        lines += 1
    if lines != rows:
        raise InputError(
            f"pyarrow's JSON reader found {rows} rows in {lines} lines: write one object per line",
            file=str(path),
        )


def _strings_for_timestamps(t: pa.DataType) -> pa.DataType:
    """``t`` with every timestamp (pyarrow's JSON reader takes "2024-01-01" for one) a string,
    as the text it was."""
    if pa.types.is_timestamp(t):
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _strings_for_timestamps(t.value_type)
        return pa.list_(inner) if pa.types.is_list(t) else pa.large_list(inner)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _strings_for_timestamps(f.type), f.nullable) for f in t])
    return t


def jsonl_schema(path: str | os.PathLike, block_size: int = 1 << 20) -> pa.Schema:
    """The columns of a JSONL file as pyarrow infers them from its first block, with text that
    looks like a date kept as text. Raises ``pa.ArrowInvalid`` on bad input there."""
    first = next(open_jsonl(path, block_size=block_size, infer=True), None)
    if first is None:
        return pa.schema([])
    return pa.schema([pa.field(f.name, _strings_for_timestamps(f.type)) for f in first.schema])


def open_jsonl(
    path: str | os.PathLike,
    *,
    schema: pa.Schema | None = None,
    block_size: int = JSONL_BLOCK_SIZE,
    infer: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream a JSONL file as record batches with pyarrow's JSON reader, ``block_size`` bytes of
    text at a time (a line longer than that grows the block: the file is read again from where
    it was). With ``schema``, only its fields are read (converted to its types) and every other
    field is skipped; without, the columns are those of :func:`jsonl_schema` (``infer``: as
    pyarrow infers them, dates included). Raises ``pa.ArrowInvalid`` on bad input while
    iterating (locate it with :func:`jsonl_problem`); an empty file gives no batch."""
    import pyarrow.json as pj

    size = Path(path).stat().st_size
    if schema is not None:
        parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    elif infer or not size:
        parse = pj.ParseOptions()
    else:
        parse = pj.ParseOptions(explicit_schema=jsonl_schema(path))
    done = 0
    while size:
        seen = 0
        try:
            reader = pj.open_json(
                path, read_options=pj.ReadOptions(block_size=block_size), parse_options=parse
            )
            for batch in reader:
                n = batch.num_rows
                if seen + n > done:
                    yield batch.slice(max(0, done - seen)) if seen < done else batch
                    done = seen + n
                seen += n
            return
        except pa.ArrowInvalid as e:
            if "Empty JSON" in str(e) and done == 0:
                return
            if "straddl" not in str(e) or block_size >= size:
                raise
            block_size = min(size, block_size * 4)


def read_jsonl(path: Path) -> pa.Table:
    """Read a JSONL file with pyarrow's JSON reader (text that looks like a date stays text). A
    line that is not a JSON object is an error naming the file, the line and the parser's
    reason; rows whose fields change type are an error naming the file."""
    import pyarrow.json as pj

    def failed(e: Exception) -> InputError:
        return jsonl_problem(path) or InputError(
            f"rows do not share one schema ({_arrow_reason(e)})", file=str(path)
        )

    size = Path(path).stat().st_size
    try:
        schema = jsonl_schema(path) if size else pa.schema([])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise failed(e) from None
    if not schema.names:
        return pa.table({})
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    block = JSONL_BLOCK_SIZE
    while True:
        try:
            options = pj.ReadOptions(block_size=block)
            table = pj.read_json(path, read_options=options, parse_options=parse)
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            if "straddl" in str(e) and block < size:
                block = min(size, block * 4)  # a line longer than a block
                continue
            raise failed(e) from None
    check_jsonl_rows(path, table.num_rows)
    return table


def _arrow_reason(e: Exception) -> str:
    return str(e).removeprefix("JSON parse error: ")


def read_jsonl_rows(
    path: Path, *, table: bool = True
) -> tuple[list[dict], list[int], pa.Table | None]:
    """Read a JSONL file in Python: its rows, the 1-based line number of each, and the Arrow table.

    For small files whose rows the caller wants as Python objects (prompt sources). A line that
    is not a JSON object is an error naming the file, the line and the parser's full reason; rows
    whose types do not fit one schema (or ``table=False``) give ``None`` for the table, so the
    caller can find the offending row and field.
    """
    rows = []
    lines = []
    for lineno, row in iter_jsonl_rows(path):
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
