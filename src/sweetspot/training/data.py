"""Reading a pairs file from ``sweetspot pair`` into TRL's conversational preference format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweetspot.errors import InputError
from sweetspot.ids import to_messages
from sweetspot.io import read_table_file

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def _completion(value: Any, field: str) -> list[dict[str, str]]:
    """A chosen/rejected value as a one-message assistant list (a bare string is accepted)."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    messages = to_messages(value, where=field)
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"{field} must end with an assistant message")
    return messages


def load_pair_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a pairs file (Parquet or JSONL) and keep only ``prompt``/``chosen``/``rejected``.

    Provenance columns (prompt_id, strategy, rewards, z, ...) are dropped: TRL would otherwise
    try to tokenize or collate them. Every row is checked; errors name the file, row and field.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such pairs file", file=str(path))
    if path.is_dir():
        raise InputError(
            "pass one pairs file (e.g. pairs/sweet-spot.parquet), not a folder", file=str(path)
        )
    if path.suffix not in (".parquet", ".jsonl"):
        raise InputError("pairs file must be .parquet or .jsonl", file=str(path))
    table = read_table_file(path)
    missing = [c for c in PAIR_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"missing column(s) {missing}", file=str(path))
    rows = []
    for i, row in enumerate(table.select(list(PAIR_COLUMNS)).to_pylist(), start=1):
        try:
            prompt = to_messages(row["prompt"], where="prompt")
            chosen = _completion(row["chosen"], "chosen")
            rejected = _completion(row["rejected"], "rejected")
        except ValueError as e:
            raise InputError(str(e), file=str(path), row=i) from None
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not rows:
        raise InputError("pairs file has no rows: nothing to train on", file=str(path))
    return rows


def pairs_digest(path: str | Path) -> str:
    """A digest of what DPO trains on in a pairs file: its ``prompt``, ``chosen`` and
    ``rejected`` columns (and ``pair_id`` where several pairs share a prompt), in order. Two
    files with the same digest train the same model, whatever their provenance columns say."""
    import hashlib

    import pyarrow as pa

    path = Path(path)
    table = read_table_file(path)
    cols = [c for c in (*PAIR_COLUMNS, "pair_id") if c in table.column_names]
    h = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.select(cols).schema) as writer:
        writer.write_table(table.select(cols).combine_chunks())
    h.update(sink.getvalue())
    return h.hexdigest()[:16]
