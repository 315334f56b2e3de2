"""The judgment cache of the pairwise LLM judge: every judgment kept in shards keyed by what
determines it, so that a killed evaluation resumes and any evaluation that meets the same
comparison again asks the judge nothing.

An entry is a folder ``ROOT/<hash>/`` for one judge setting (``key.json``: the judge model's
identity, the template's digest, the verdict words, whether log-probabilities were asked for,
the reply's max tokens). Its shards (``part-00000.parquet``, ... with completion records, written
atomically by ``sweetspot.shards``) hold one row per comparison, found by ``comparison``: a hash
of the prompt id and the two responses in the order shown. A comparison shown the other way
round is another row, so a policy and a baseline that swap roles reuse both.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError
from sweetspot.fingerprint import hash_json
from sweetspot.io import write_json_atomic
from sweetspot.shards import shard_files, shard_index, shard_path, write_shard_file

KEY_FILE = "key.json"
JUDGMENTS_SCHEMA = pa.schema(
    [
        ("comparison", pa.string()),  # hash of (prompt id, first response, second response)
        ("prompt_id", pa.string()),
        ("p_first", pa.float64()),  # P(the response shown first is better); null: unparsed
        ("source", pa.string()),  # logprobs | verdict | unparsed
        ("reply", pa.string()),  # the judge's reply text (of the last attempt)
        ("attempts", pa.int64()),  # requests it took (an unparsed reply is asked once more)
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("seconds", pa.float64()),
    ]
)


def text_digest(text: str) -> str:
    """sha256 hex digest of a text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def comparison_id(prompt_id: str, first: str, second: str) -> str:
    """The cache id of one comparison: ``first`` shown as output_1, ``second`` as output_2."""
    return text_digest(f"{prompt_id}\n{text_digest(first)}\n{text_digest(second)}")


class JudgmentCache:
    """The judgments of one judge setting, in ``ROOT/<hash of key>/``."""

    def __init__(self, root: str | Path, key: dict[str, Any]) -> None:
        self.key = key
        self.folder = Path(root) / hash_json(key)

    def load(self) -> dict[str, dict[str, Any]]:
        """The judgments made so far, by comparison id (empty for a new entry)."""
        key_file = self.folder / KEY_FILE
        if key_file.is_file():
            try:
                saved = json.loads(key_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                saved = None
            if saved != self.key:
                raise InputError(
                    "this judgment cache folder holds judgments made with other settings",
                    file=str(self.folder),
                )
        files = shard_files(self.folder)
        done: dict[str, dict[str, Any]] = {}
        for path in files:
            try:
                rows = pq.read_table(path, schema=JUDGMENTS_SCHEMA).to_pylist()
            except (pa.ArrowInvalid, OSError) as e:
                raise InputError(f"cannot read a judgment shard ({e})", file=str(path)) from None
            for row in rows:
                done[row["comparison"]] = row
        return done

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Add ``rows`` as a new shard (atomically; nothing already written is touched)."""
        if not rows:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / KEY_FILE).is_file():
            write_json_atomic(self.folder / KEY_FILE, self.key)
        table = pa.Table.from_pylist(rows, schema=JUDGMENTS_SCHEMA)
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            files = shard_files(self.folder)
            index = (shard_index(files[-1].name) or 0) + 1 if files else 0
            write_shard_file(table, shard_path(self.folder, index))
