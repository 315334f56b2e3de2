"""Shards of a stage: ``part-00000.parquet`` files in a folder, each written atomically.

A shard file exists only once it is complete (temp file + rename), so a restarted stage skips
every shard that is present and redoes at most the one that was in flight.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.io import write_table

SHARD_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")


def shard_name(i: int) -> str:
    """The file name of shard ``i``: ``part-00000.parquet``."""
    if i < 0:
        raise ValueError(f"shard index must be >= 0, got {i}")
    return f"part-{i:05d}.parquet"


def shard_path(directory: str | os.PathLike, i: int) -> Path:
    """The path of shard ``i`` in ``directory``."""
    return Path(directory) / shard_name(i)


def shard_files(directory: str | os.PathLike) -> list[Path]:
    """The finished shard files in ``directory``, sorted by index (temp files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = SHARD_PATTERN.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def done_shards(directory: str | os.PathLike) -> set[int]:
    """Indices of the shards already written in ``directory``."""
    return {int(SHARD_PATTERN.match(p.name).group(1)) for p in shard_files(directory)}


def write_shard(table: pa.Table, directory: str | os.PathLike, i: int) -> Path:
    """Write ``table`` as shard ``i`` of ``directory`` atomically; return its path."""
    return write_shard_file(table, shard_path(directory, i))


def write_shard_file(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` atomically (temp file beside it, then rename)."""
    return write_table(table, path, "parquet")


def read_shards(directory: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Concatenate every finished shard of ``directory`` (an empty table when there is none)."""
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
