"""Shards of a stage: ``part-00000.parquet`` files in a folder, each with a completion record.

A shard file exists only once it is complete (temp file + rename). Beside it, written atomically
right after the shard's rename, its *completion record* ``.done/part-00000.json`` holds what the
writer knew for free: the file's size and sha256 (the Parquet is written into memory, hashed,
then written out), its row count and when it was written::

    {"file": "part-00000.parquet", "bytes": 1234, "sha256": "…", "rows": 64,
     "written": "2025-06-01T12:00:00+00:00", "meta": {…}}

``meta`` is what the stage that wrote the shard wants to remember about it (sample counts, the
input it was computed from, …).

Completion is then a ``stat``, never a read: a shard is done when its file exists, its record
exists and the file's size is the recorded one. A shard without a record (killed between the two
renames, or written by an older sweetspot or another tool) is verified once (its Parquet footer
must be readable), hashed and recorded. A shard whose size differs from its record was changed
after sweetspot wrote it (a disk error, an edit, a copy gone wrong): it is never silently used,
redone or deleted, but reported as an :class:`InputError` naming the file, so the user decides
(move it away to redo it, or delete its record to accept it as it is). Readers of a folder that
holds *input* written by someone else pass ``on_mismatch="rehash"`` to re-record such a file
instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError
from sweetspot.io import write_bytes_atomic, write_json_atomic

SHARD_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
RECORDS_DIR = ".done"

OnMismatch = Literal["error", "rehash"]


@dataclass(frozen=True)
class ShardRecord:
    """The completion record of one shard file."""

    file: str
    """The shard's file name (``part-00000.parquet``), relative to its folder."""
    bytes: int
    """The file's size in bytes."""
    sha256: str
    """sha256 hex digest of the file's bytes."""
    rows: int
    """Rows in the shard."""
    written: str = ""
    """When the record was written (ISO 8601, UTC)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """What the writing stage keeps about the shard (counts, the input it came from, …)."""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ShardRecord:
        """A record from its JSON object (``ValueError``/``KeyError``/``TypeError`` if it is
        not one)."""
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise TypeError("meta must be an object")
        return cls(
            file=str(obj["file"]),
            bytes=int(obj["bytes"]),
            sha256=str(obj["sha256"]),
            rows=int(obj["rows"]),
            written=str(obj.get("written", "")),
            meta=meta,
        )


def shard_name(i: int) -> str:
    """The file name of shard ``i``: ``part-00000.parquet``."""
    if i < 0:
        raise ValueError(f"shard index must be >= 0, got {i}")
    return f"part-{i:05d}.parquet"


def shard_index(name: str) -> int | None:
    """The index of a shard file name, or None when ``name`` is not one."""
    m = SHARD_PATTERN.match(name)
    return int(m.group(1)) if m else None


def shard_path(directory: str | os.PathLike, i: int) -> Path:
    """The path of shard ``i`` in ``directory``."""
    return Path(directory) / shard_name(i)


def record_path(shard: str | os.PathLike) -> Path:
    """Where the completion record of the shard file ``shard`` lives: ``.done/<stem>.json``."""
    shard = Path(shard)
    return shard.parent / RECORDS_DIR / (shard.stem + ".json")


def shard_files(directory: str | os.PathLike) -> list[Path]:
    """The shard files in ``directory``, sorted by index (temp files are ignored). Existence
    only: use :func:`done_shards` to know which are complete."""
    return [p for _, p, _ in _scan(Path(directory))]


def _scan(directory: Path) -> list[tuple[int, Path, int]]:
    """``(index, path, size)`` of every shard file in ``directory``, sorted by index."""
    found = []
    try:
        entries = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with entries:
        for e in entries:
            i = shard_index(e.name)
            if i is not None and e.is_file():
                found.append((i, Path(e.path), e.stat().st_size))
    return sorted(found)


def write_shard(
    table: pa.Table, directory: str | os.PathLike, i: int, *, meta: dict | None = None
) -> ShardRecord:
    """Write ``table`` as shard ``i`` of ``directory`` with its completion record."""
    return write_shard_file(table, shard_path(directory, i), meta=meta)


def write_shard_file(
    table: pa.Table, path: str | os.PathLike, *, meta: dict | None = None
) -> ShardRecord:
    """Write ``table`` to ``path`` as Parquet atomically, then its completion record.

    The Parquet bytes are built in memory and hashed, then written through a temporary file
    (synced) and renamed into place; the record follows, also atomically. An older record of
    ``path`` is removed first, so a record never describes a file it was not written for (a
    shard without a record is verified on the next check).
    """
    path = Path(path)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue()
    view = memoryview(data)
    record = ShardRecord(
        file=path.name,
        bytes=data.size,
        sha256=hashlib.sha256(view).hexdigest(),
        rows=table.num_rows,
        written=_now(),
        meta=dict(meta or {}),
    )
    rec = record_path(path)
    rec.unlink(missing_ok=True)
    write_bytes_atomic(path, view)
    write_json_atomic(rec, record.to_json())
    return record


def write_record(shard: str | os.PathLike, record: ShardRecord) -> None:
    """(Re)write the completion record of ``shard`` (e.g. to add ``meta``)."""
    write_json_atomic(record_path(shard), record.to_json())


def recorded_digest(shard: str | os.PathLike, size: int) -> str | None:
    """The sha256 the completion record of ``shard`` holds, when the record exists and its size
    is ``size`` (the file's size now); else None. Reads the small record, never the shard."""
    shard = Path(shard)
    try:
        with open(record_path(shard), encoding="utf-8") as f:
            rec = ShardRecord.from_json(json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec.sha256 if rec.file == shard.name and rec.bytes == size else None


def shard_records(directory: str | os.PathLike) -> dict[str, ShardRecord]:
    """The completion records of ``directory``, by shard file name.

    These are the records as stored: one may describe a shard file removed since. Unreadable
    records are left out (their shard counts as unrecorded). :func:`done_shards` checks them
    against the files.
    """
    folder = Path(directory) / RECORDS_DIR
    out: dict[str, ShardRecord] = {}
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return out
    with entries:
        for e in entries:
            if not e.name.endswith(".json") or e.name.startswith("."):
                continue
            try:
                with open(e.path, encoding="utf-8") as f:
                    rec = ShardRecord.from_json(json.load(f))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if rec.file == e.name[: -len(".json")] + ".parquet":
                out[rec.file] = rec
    return out


def checked_records(
    directory: str | os.PathLike, *, on_mismatch: OnMismatch = "error"
) -> dict[int, ShardRecord]:
    """The records of the complete shards of ``directory``, by index, checked by ``stat``.

    A shard without a record is verified (Parquet footer readable), hashed and recorded once. A
    shard whose size differs from its record raises :class:`InputError` naming it, or with
    ``on_mismatch="rehash"`` is verified and recorded afresh (for folders of input written by
    someone else). A shard whose Parquet footer cannot be read is always an error.
    """
    directory = Path(directory)
    files = _scan(directory)
    if not files:
        return {}
    records = shard_records(directory)
    done: dict[int, ShardRecord] = {}
    for i, path, size in files:
        rec = records.get(path.name)
        if rec is not None and rec.bytes == size:
            done[i] = rec
            continue
        if rec is not None and on_mismatch == "error":
            raise InputError(
                f"this shard has {size:,} bytes but was written with {rec.bytes:,}: it was "
                "changed or damaged after it was written. Move it away to compute it again, or "
                f"delete its record {record_path(path)} to accept it as it is",
                file=str(path),
            )
        new = _record_existing(path)
        if new is not None:
            done[i] = new
    return done


def done_shards(directory: str | os.PathLike, *, on_mismatch: OnMismatch = "error") -> set[int]:
    """Indices of the complete shards of ``directory``: file and record present, sizes equal.

    Costs a ``stat`` per shard and a read of each small record; see :func:`checked_records`
    for shards without a record and shards that do not match theirs.
    """
    return set(checked_records(directory, on_mismatch=on_mismatch))


def stage_digest(directory: str | os.PathLike) -> str | None:
    """A fingerprint of the complete shards of ``directory`` (None when it has none).

    A sha256 over each complete shard's (name, bytes, sha256) from its record, after the
    ``stat`` check of :func:`done_shards`: a no-op check of a finished folder reads no shard.
    """
    done = checked_records(directory)
    if not done:
        return None
    h = hashlib.sha256()
    for i in sorted(done):
        r = done[i]
        h.update(f"{r.file}\t{r.bytes}\t{r.sha256}\n".encode())
    return h.hexdigest()


def _record_existing(path: Path) -> ShardRecord | None:
    """Verify, hash and record a shard file that has no (valid) record; None if it vanished or
    changed while being read (a writer is replacing it: not complete yet)."""
    try:
        before = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        rows = pq.read_metadata(pa.BufferReader(data)).num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(
            f"not a readable Parquet file ({e}); move it away to compute this shard again",
            file=str(path),
        ) from None
    try:
        after = path.stat()
    except FileNotFoundError:
        return None
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    ) or after.st_size != len(data):
        return None
    record = ShardRecord(
        file=path.name,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        rows=rows,
        written=_now(),
    )
    write_record(path, record)
    return record


def remove_shards(directory: str | os.PathLike) -> None:
    """Delete every shard file of ``directory`` and its completion record (``--overwrite``)."""
    directory = Path(directory)
    for p in shard_files(directory):
        record_path(p).unlink(missing_ok=True)
        p.unlink()
    records = directory / RECORDS_DIR
    if records.is_dir():
        for p in records.iterdir():
            if p.suffix == ".json":
                p.unlink()


def read_shards(directory: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Concatenate every shard of ``directory`` (an empty table when there is none)."""
    files = shard_files(directory)
    if not files:
        return pa.table({})
    tables = [pq.read_table(p, columns=columns) for p in files]
    return pa.concat_tables(tables, promote_options="default")


def plan_shards(n_prompts: int, shard_size: int) -> list[range]:
    """Split ``n_prompts`` rows into consecutive ranges of at most ``shard_size`` rows."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [range(s, min(s + shard_size, n_prompts)) for s in range(0, n_prompts, shard_size)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
