"""Prompt sets: load from a JSONL/Parquet file or a 🤗 dataset, normalise to message lists,
dedupe by prompt id, shuffle with a seed, limit; write a stage's ``prompts.parquet`` once."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError
from sweetspot.ids import prompt_id, to_messages
from sweetspot.io import MESSAGES_TYPE, read_jsonl_rows, read_table_file, write_table
from sweetspot.stages import PROMPTS

PROMPTS_FILE = PROMPTS.outputs["prompts"]  # the layout is the stage declaration's
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
# Tried in order when no field is given.
DEFAULT_FIELDS = ("messages", "prompt", "instruction", "question", "chosen")
META_DUPLICATES = b"sweetspot.duplicates_removed"
META_SOURCE_ROWS = b"sweetspot.source_rows"


def load_prompts(
    source: str | os.PathLike,
    *,
    split: str | None = None,
    field: str | None = None,
    limit: int | None = None,
    shuffle_seed: int | None = None,
) -> pa.Table:
    """Load prompts as a table ``(prompt_id, messages, source_row[, split])``.

    ``source`` is a JSONL/Parquet file, or a 🤗 dataset name or local dataset folder read with
    ``datasets.load_dataset(source, split=split or "train")``. For a file, ``split`` keeps the
    rows whose ``split`` field has that value. ``field`` names the column holding
    the prompt (a string or a message list); a message list that ends with an assistant turn
    loses that turn (UltraFeedback's ``chosen``). Duplicate prompts (same id) are removed, the
    first kept; then the rows are shuffled with ``shuffle_seed`` (if given) and cut to ``limit``.
    The number of duplicates removed is in the schema metadata (see ``prompt_stats``).
    """
    rows, lines, where, local = _read_source(source, split)
    if not rows:
        raise InputError("holds no prompts", file=where)
    positions = list(range(len(rows)))  # the 0-based source row of each row
    if local and split is not None:
        positions = _select_split(rows, split, where)
    field = _choose_field(rows[0], field, where)
    ids: list[str] = []
    messages: list[list[dict]] = []
    source_rows: list[int] = []
    seen: set[str] = set()
    for k in positions:
        msgs = _row_messages(rows[k], field, where, lines[k])
        pid = prompt_id(msgs)
        if pid in seen:
            continue
        seen.add(pid)
        ids.append(pid)
        messages.append(msgs)
        source_rows.append(k)
    order = list(range(len(ids)))
    if shuffle_seed is not None:
        import numpy as np

        order = np.random.default_rng(shuffle_seed).permutation(len(ids)).tolist()
    if limit is not None:
        if limit < 1:
            raise InputError(f"limit must be >= 1, got {limit}", field="limit")
        order = order[:limit]
    cols: dict[str, pa.Array] = {
        "prompt_id": pa.array([ids[i] for i in order], pa.string()),
        "messages": pa.array([messages[i] for i in order], MESSAGES_TYPE),
        "source_row": pa.array([source_rows[i] for i in order], pa.int64()),
    }
    if split is not None:
        # each row's own split (a split expression such as eval+train[48:] joins several)
        own = [rows[source_rows[i]].get("split", split) if local else split for i in order]
        cols["split"] = pa.array(own, pa.string())
    meta = {
        META_DUPLICATES: str(len(positions) - len(ids)).encode(),
        META_SOURCE_ROWS: str(len(positions)).encode(),
    }
    return pa.table(cols).replace_schema_metadata(meta)


def prompt_stats(table: pa.Table) -> dict[str, int]:
    """Counts recorded by ``load_prompts``: source rows, duplicates removed, prompts kept."""
    meta = table.schema.metadata or {}
    return {
        "source_rows": int(meta.get(META_SOURCE_ROWS, table.num_rows)),
        "duplicates_removed": int(meta.get(META_DUPLICATES, 0)),
        "prompts": table.num_rows,
    }


def _read_source(source: str | os.PathLike, split: str | None) -> tuple[list[dict], list[int], str]:
    """The rows, the row number of each as a user would count it (JSONL: the line), and a name."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix not in FILE_SUFFIXES:
            raise InputError("prompt files must be .jsonl or .parquet", file=str(path))
        if path.suffix == ".parquet":
            rows = read_table_file(path).to_pylist()
            return rows, list(range(1, len(rows) + 1)), str(path), True
        rows, lines, _ = read_jsonl_rows(path, table=False)
        return rows, lines, str(path), True
    if str(source).endswith(FILE_SUFFIXES) and not path.exists():
        raise InputError("no such prompt file", file=str(path))
    rows = _load_dataset(str(source), split)
    return rows, list(range(1, len(rows) + 1)), f"{source} (split {split or 'train'})", False


_SPLIT_TERM = re.compile(r"^\s*([^\[\]+]+?)\s*(?:\[\s*(-?\d*)\s*:\s*(-?\d*)\s*\])?\s*$")


def _select_split(rows: list[dict], split: str, where: str) -> list[int]:
    """The positions of the rows of a file whose ``split`` field is ``split``.

    As in 🤗 datasets' split syntax, ``split`` may join terms with ``+`` and slice a split's rows
    in file order: ``eval+train[48:]`` is every eval row and the train rows after the first 48.
    """
    if not any("split" in r for r in rows):
        raise InputError(
            f"no 'split' field to select {split!r} from (leave the split out to use every row)",
            file=where,
            field="split",
        )
    keep: list[int] = []
    for term in split.split("+"):
        m = _SPLIT_TERM.match(term)
        if m is None:
            raise InputError(
                f"cannot read split {split!r} (write NAME, NAME[A:B] or terms joined by '+')",
                file=where,
                field="split",
            )
        name, start, stop = m.groups()
        of_split = [k for k, r in enumerate(rows) if r.get("split") == name]
        if not of_split:
            raise InputError(f"no rows with split {name!r}", file=where, field="split")
        if m.group(2) is not None:
            of_split = of_split[int(start) if start else None : int(stop) if stop else None]
        keep += [k for k in of_split if k not in keep]
    if not keep:
        raise InputError(f"split {split!r} selects no rows", file=where, field="split")
    return keep


def _load_dataset(name: str, split: str | None) -> list[dict]:
    """A 🤗 dataset (hub name, or a local folder of data files) via ``datasets.load_dataset``."""
    try:
        import datasets
    except ImportError:
        raise InputError("reading 🤗 datasets needs: pip install 'sweetspot[hf]'") from None
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as e:  # datasets raises many kinds (not found, offline, bad split)
        raise InputError(f"cannot load dataset ({type(e).__name__}: {e})", file=name) from None
    return ds.to_list()


def _choose_field(first: dict, field: str | None, where: str) -> str:
    if field is not None:
        if field not in first:
            raise InputError(
                f"no such field; the rows have: {', '.join(map(str, first))}",
                file=where,
                row=1,
                field=field,
            )
        return field
    for name in DEFAULT_FIELDS:
        if name in first:
            return name
    raise InputError(
        f"no prompt field found (tried {', '.join(DEFAULT_FIELDS)}); pass --field. "
        f"The rows have: {', '.join(map(str, first))}",
        file=where,
        row=1,
    )


def _row_messages(row: dict, field: str, where: str, rownum: int) -> list[dict[str, Any]]:
    value = row.get(field)
    if value is None:
        raise InputError("the prompt field is missing or null", file=where, row=rownum, field=field)
    if (
        isinstance(value, list)
        and len(value) > 1
        and isinstance(value[-1], dict)
        and value[-1].get("role") == "assistant"
    ):
        value = value[:-1]  # a conversation with its answer (UltraFeedback `chosen`)
    try:
        msgs = to_messages(value, where=field)
    except ValueError as e:
        raise InputError(str(e), file=where, row=rownum, field=field) from None
    if not any(m["content"].strip() for m in msgs):
        raise InputError("the prompt is empty", file=where, row=rownum, field=field)
    return msgs


def write_prompts(
    table: pa.Table, stage_dir: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``stage_dir/prompts.parquet`` once (atomically).

    If the file exists, it must hold the same prompts in the same order (then nothing is
    written); different prompts are an error unless ``overwrite`` is true.
    """
    path = Path(stage_dir) / PROMPTS_FILE
    if path.exists() and not overwrite:
        old = read_prompts(stage_dir)
        if old.column("prompt_id").to_pylist() != table.column("prompt_id").to_pylist():
            raise InputError(
                f"the stage folder already holds {old.num_rows} different prompts; use another "
                "--out, the same prompt options, or --overwrite to start this stage afresh",
                file=str(path),
            )
        return path
    return write_table(table, path, "parquet")


def read_prompts(stage_dir: str | os.PathLike) -> pa.Table:
    """Read ``stage_dir/prompts.parquet``."""
    path = Path(stage_dir) / PROMPTS_FILE
    if not path.is_file():
        raise InputError("no prompts.parquet in the stage folder", file=str(path))
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read prompts ({e})", file=str(path)) from None
