"""Prompts of the pair stage: column names, prompt ids of many prompts at once, the prompt
table, and the line and field of a JSONL file that pyarrow's JSON reader rejected."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from json.encoder import encode_basestring as _enc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.ids import id_of_canonical, prompt_id, to_messages
from sweetspot.io import MESSAGE_TYPE, MESSAGES_TYPE, iter_jsonl_rows, jsonl_problem
from sweetspot.pairs.arrays import to_numpy

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "instruction"),
    "prompt_id": ("prompt_id",),
    "responses": ("responses", "output", "outputs"),
    "rewards": ("rewards", "scores"),
    "response": ("response", "text"),
    "reward": ("reward", "score"),
    "sample_idx": ("sample_idx",),
    "finish_reason": ("finish_reason",),
}


def pick(names: list[str], columns: dict[str, tuple[str, ...]], key: str) -> str | None:
    """The first of ``columns[key]`` that is among ``names``."""
    for c in columns[key]:
        if c in names:
            return c
    return None


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _user_messages(texts: pa.Array) -> pa.Array:
    """``[{"role": "user", "content": text}]`` per text, built in Arrow."""
    texts = texts.cast(pa.string())
    roles = pa.repeat(pa.scalar("user", pa.string()), len(texts))
    structs = pa.StructArray.from_arrays([roles, texts], fields=list(MESSAGE_TYPE))
    return pa.ListArray.from_arrays(pa.array(np.arange(len(texts) + 1, dtype=np.int32)), structs)


def _plain_messages(values: pa.Array) -> bool:
    """Whether a column is lists of {role, content} strings with no null and no empty list
    (every row then is a valid message list as it is)."""
    t = values.type
    if not is_list(t) or not pa.types.is_struct(t.value_type) or values.null_count:
        return False
    names = {t.value_type.field(i).name for i in range(t.value_type.num_fields)}
    if not {"role", "content"} <= names:
        return False
    flat = pc.list_flatten(values)
    if flat.null_count:
        return False
    for name in ("role", "content"):
        f = pc.struct_field(flat, name)
        if not is_text(f.type) or f.null_count:
            return False
    return bool(np.all(to_numpy(pc.list_value_length(values)) > 0))


def prompt_messages(
    values: pa.Array, where: Callable[[int], InputError]
) -> tuple[list[str], pa.Array]:
    """Prompt ids and normalised Arrow messages of prompt values (strings or message lists);
    ``where(i)`` is the error (file, row, field) of a bad value ``i``, given its reason.

    Ids are those of :func:`sweetspot.ids.prompt_id` (sha256 of the messages' canonical JSON),
    with the JSON written directly for the two common forms.
    """
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if is_text(values.type) and not values.null_count:
        pids = [
            id_of_canonical(f'[{{"content":{_enc(t)},"role":"user"}}]') for t in values.to_pylist()
        ]
        return pids, _user_messages(values)
    if _plain_messages(values):
        flat = pc.list_flatten(values)
        role_arr, content_arr = pc.struct_field(flat, "role"), pc.struct_field(flat, "content")
        roles = [_enc(r) for r in role_arr.to_pylist()]
        contents = [_enc(c) for c in content_arr.to_pylist()]
        offsets = to_numpy(values.offsets, np.int64)
        offsets = offsets - offsets[0]
        pids = [
            id_of_canonical(
                "["
                + ",".join(f'{{"content":{contents[k]},"role":{roles[k]}}}' for k in range(a, b))
                + "]"
            )
            for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())
        ]
        structs = pa.StructArray.from_arrays(
            [role_arr.cast(pa.string()), content_arr.cast(pa.string())], fields=list(MESSAGE_TYPE)
        )
        msgs = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), structs)
        return pids, msgs
    msgs = []
    for i, v in enumerate(values.to_pylist()):
        try:
            msgs.append(to_messages(v))
        except ValueError as e:
            raise where(i, str(e)) from None
    return [prompt_id(m) for m in msgs], pa.array(msgs, MESSAGES_TYPE)


def json_error(reason: str, file: Path, cols: dict) -> InputError:
    """Locate why pyarrow's JSON reader rejected ``file``: a line that is not a JSON object, a
    field of the wrong kind (both named with their line), or else the reader's own reason."""
    problem = jsonl_problem(file)
    if problem is not None:
        return problem

    def is_num(x: object) -> bool:
        return x is None or (isinstance(x, numbers.Real) and not isinstance(x, bool))

    checks = {
        "rewards": lambda v: v is None or isinstance(v, list) and all(is_num(x) for x in v),
        "reward": is_num,
        "responses": lambda v: (
            v is None or isinstance(v, list) and all(x is None or isinstance(x, str) for x in v)
        ),
        "response": lambda v: v is None or isinstance(v, str),
        "sample_idx": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "prompt_id": lambda v: v is None or isinstance(v, str),
        "finish_reason": lambda v: v is None or isinstance(v, str),
    }
    prompt_kind = None
    for line, row in iter_jsonl_rows(file):
        for key, ok in checks.items():
            for name in cols[key]:
                if name in row and not ok(row[name]):
                    what = "reward is not a number" if key.startswith("reward") else "wrong type"
                    return InputError(
                        f"{what}: {row[name]!r}"[:200], file=str(file), row=line, field=name
                    )
        for name in cols["prompt"]:
            if name in row:
                try:
                    to_messages(row[name], where=name)
                except ValueError as err:
                    return InputError(str(err), file=str(file), row=line, field=name)
                kind = "text" if isinstance(row[name], str) else "a message list"
                if prompt_kind is None:
                    prompt_kind = kind
                elif kind != prompt_kind:
                    return InputError(
                        f"prompt is {kind} here and {prompt_kind} on earlier lines: use one form",
                        file=str(file),
                        row=line,
                        field=name,
                    )
    return InputError(f"cannot read JSON ({reason})", file=str(file))


def load_prompt_table(path: Path) -> tuple[list[str], pa.Array]:
    """Prompt ids and messages of a prompt table (``messages`` or ``prompt``, optionally
    ``prompt_id``: checked to be the hash of the messages), Parquet or JSONL."""
    from sweetspot.io import list_table_files, read_table_file

    ids, msgs = [], []
    for f in list_table_files(path):
        table = read_table_file(f)
        col = (
            "messages"
            if "messages" in table.column_names
            else pick(table.column_names, DEFAULT_COLUMNS, "prompt")
        )
        if col is None:
            raise InputError("prompt table needs a messages or prompt column", file=str(f))

        def where(i: int, msg: str, f=f, col=col) -> InputError:
            return InputError(msg, file=str(f), row=i + 1, field=col)

        pids, m = prompt_messages(table.column(col).combine_chunks(), where)
        if "prompt_id" in table.column_names:
            for i, (given, pid) in enumerate(zip(table.column("prompt_id").to_pylist(), pids)):
                if given != pid:
                    raise where(i, f"prompt_id {given} is not the hash of the messages ({pid})")
        ids += pids
        msgs.append(m)
    return ids, pa.concat_arrays(msgs) if msgs else pa.array([], MESSAGES_TYPE)
