"""The one-pass pool loader that sweetspot used before the two-pass pair stage, kept verbatim
as a test reference: it reads every column of every file, keeps all texts and a line number per
response. The streaming loader (``sweetspot.pairs.pool.load_pool``) must give the same pool and
the same pairs on every input it accepts.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.ids import prompt_id, to_messages
from sweetspot.io import (
    MESSAGES_TYPE,
    list_table_files,
    read_jsonl_rows,
    read_table_file,
)
from sweetspot.pairs.pool import Pool
from sweetspot.pairs.texts import ArrowTexts

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


@dataclass
class _Frame:
    """One input file as long rows, before the pool-wide merge."""

    file: str
    pid_values: list[str]  # distinct prompt ids of this file
    pid_code: np.ndarray  # per response: index into pid_values
    sample_idx: np.ndarray
    rewards: np.ndarray  # float64, NaN for a missing reward
    texts: pa.Array
    lines: np.ndarray  # per response: the 1-based row (JSONL: line) it came from
    truncated: np.ndarray | None
    messages: dict[str, list[dict]]


def _pick(names: list[str], columns: dict[str, tuple[str, ...]], key: str) -> str | None:
    for c in columns[key]:
        if c in names:
            return c
    return None


def _bad(file: str, row: int, fld: str, msg: str) -> InputError:
    return InputError(msg, file=file, row=row, field=fld)


def _numeric_or_error(
    arr: pa.Array, file: str, lines: np.ndarray, fld: str, parent: np.ndarray | None = None
) -> np.ndarray:
    """Rewards as float64 (null -> NaN); a non-numeric value is an error naming its row."""
    t = arr.type
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        valid = np.flatnonzero(~np.asarray(pc.is_null(arr)))
        i = int(valid[0]) if len(valid) else 0
        row = int(lines[parent[i] if parent is not None else i])
        raise _bad(file, row, fld, f"reward is not a number: {arr[i].as_py()!r}")
    return np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), np.nan), dtype=np.float64)


def _messages_of(values: list, file: str, lines: np.ndarray, fld: str) -> list[list[dict]]:
    out = []
    for i, v in enumerate(values):
        try:
            out.append(to_messages(v, where=fld))
        except ValueError as e:
            raise _bad(file, int(lines[i]), fld, str(e)) from None
    return out


def _diagnose_jsonl(rows: list[dict], lines: list[int], file: str, cols: dict) -> InputError:
    """Find the first row whose field has the wrong kind (used when rows do not share a schema)."""

    def is_num(x: object) -> bool:
        return x is None or (isinstance(x, numbers.Real) and not isinstance(x, bool))

    checks = {
        "rewards": lambda v: isinstance(v, list) and all(is_num(x) for x in v),
        "reward": is_num,
        "responses": lambda v: (
            isinstance(v, list) and all(x is None or isinstance(x, str) for x in v)
        ),
        "response": lambda v: v is None or isinstance(v, str),
        "sample_idx": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "prompt_id": lambda v: isinstance(v, str),
    }
    for row, line in zip(rows, lines):
        for key, ok in checks.items():
            for name in cols[key]:
                if name in row and not ok(row[name]):
                    what = "reward is not a number" if key.startswith("reward") else "wrong type"
                    return _bad(file, line, name, f"{what}: {row[name]!r}"[:200])
        for name in cols["prompt"]:
            if name in row:
                try:
                    to_messages(row[name], where=name)
                except ValueError as e:
                    return _bad(file, line, name, str(e))
    return InputError("rows do not share one schema", file=file)


def _read(path: Path, cols: dict) -> tuple[pa.Table, np.ndarray]:
    if path.suffix == ".parquet":
        table = read_table_file(path)
        return table, np.arange(1, table.num_rows + 1)
    rows, lines, table = read_jsonl_rows(path)
    if table is None:
        raise _diagnose_jsonl(rows, lines, str(path), cols)
    return table, np.asarray(lines, dtype=np.int64)


def _wide_frame(table: pa.Table, lines: np.ndarray, file: str, cols: dict) -> _Frame:
    names = table.column_names
    p_col, r_col, s_col = (_pick(names, cols, k) for k in ("prompt", "responses", "rewards"))
    for key, col in (("prompt", p_col), ("responses", r_col), ("rewards", s_col)):
        if col is None:
            raise InputError(
                f"missing column (looked for {', '.join(cols[key])}; found {', '.join(names)})",
                file=file,
                field=key,
            )
    for col in (r_col, s_col):
        t = table.schema.field(col).type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise _bad(file, int(lines[0]), col, f"must be a list, got {t}")
    responses, rewards = table.column(r_col).combine_chunks(), table.column(s_col).combine_chunks()
    for col, arr in ((r_col, responses), (s_col, rewards)):
        nulls = np.flatnonzero(np.asarray(pc.is_null(arr)))
        if len(nulls):
            raise _bad(file, int(lines[nulls[0]]), col, "missing list")
    len_r = np.asarray(pc.list_value_length(responses))
    len_s = np.asarray(pc.list_value_length(rewards))
    bad = np.flatnonzero(len_r != len_s)
    if len(bad):
        i = bad[0]
        raise _bad(
            file,
            int(lines[i]),
            s_col,
            f"{len_s[i]} rewards for {len_r[i]} responses: lists must have equal length",
        )
    messages = _messages_of(table.column(p_col).to_pylist(), file, lines, p_col)
    pids = [prompt_id(m) for m in messages]
    parent = np.asarray(pc.list_parent_indices(responses), dtype=np.int64)
    starts = np.asarray(responses.offsets, dtype=np.int64)[:-1] - responses.offset
    flat_rewards = _numeric_or_error(pc.list_flatten(rewards), file, lines, s_col, parent)
    texts = pc.list_flatten(responses)
    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        if not pa.types.is_null(texts.type):
            raise _bad(file, int(lines[0]), r_col, f"responses must be strings, got {texts.type}")
        texts = pa.array([None] * len(texts), pa.string())
    uniq = {}
    codes = np.array([uniq.setdefault(p, len(uniq)) for p in pids], dtype=np.int64)
    return _Frame(
        file=file,
        pid_values=list(uniq),
        pid_code=codes[parent],
        sample_idx=np.arange(len(parent), dtype=np.int64) - starts[parent],
        rewards=flat_rewards,
        texts=texts,
        lines=lines[parent],
        truncated=None,
        messages=dict(zip(pids, messages)),
    )


def _long_frame(
    table: pa.Table, lines: np.ndarray, file: str, cols: dict, prompt_table: dict | None
) -> _Frame:
    names = table.column_names
    p_col, id_col = _pick(names, cols, "prompt"), _pick(names, cols, "prompt_id")
    t_col, r_col = _pick(names, cols, "response"), _pick(names, cols, "reward")
    i_col, f_col = _pick(names, cols, "sample_idx"), _pick(names, cols, "finish_reason")
    for key, col in (("response", t_col), ("reward", r_col), ("sample_idx", i_col)):
        if col is None:
            raise InputError(
                f"missing column (looked for {', '.join(cols[key])}; found {', '.join(names)})",
                file=file,
                field=key,
            )
    idx_arr = table.column(i_col).combine_chunks()
    if not pa.types.is_integer(idx_arr.type):
        raise _bad(
            file, int(lines[0]), i_col, f"sample index must be an integer, got {idx_arr.type}"
        )
    nulls = np.flatnonzero(np.asarray(pc.is_null(idx_arr)))
    if len(nulls):
        raise _bad(file, int(lines[nulls[0]]), i_col, "missing sample index")
    messages: dict[str, list[dict]] = {}
    if p_col is not None:
        prompts = table.column(p_col).combine_chunks()
        if pa.types.is_string(prompts.type) or pa.types.is_large_string(prompts.type):
            enc = prompts.dictionary_encode()
            values = enc.dictionary.to_pylist()
            first_row = {}
            for row, code in enumerate(np.asarray(enc.indices)):
                first_row.setdefault(int(code), row)
            msgs = _messages_of(
                values, file, lines[[first_row[i] for i in range(len(values))]], p_col
            )
            codes = np.asarray(enc.indices, dtype=np.int64)
        else:
            all_msgs = _messages_of(prompts.to_pylist(), file, lines, p_col)
            keys = {}
            codes = np.array([keys.setdefault(repr(m), len(keys)) for m in all_msgs])
            msgs = [None] * len(keys)
            for m, c in zip(all_msgs, codes):
                msgs[c] = m
        pid_values = [prompt_id(m) for m in msgs]
        messages = dict(zip(pid_values, msgs))
    elif id_col is not None:
        enc = table.column(id_col).combine_chunks().cast(pa.string()).dictionary_encode()
        pid_values = enc.dictionary.to_pylist()
        codes = np.asarray(enc.indices, dtype=np.int64)
        if prompt_table is None:
            raise InputError(
                "rows name prompt_id but no prompt table was given (--prompts FILE)",
                file=file,
                field=id_col,
            )
        missing = [p for p in pid_values if p not in prompt_table]
        if missing:
            row = int(lines[int(np.flatnonzero(codes == pid_values.index(missing[0]))[0])])
            raise _bad(file, row, id_col, f"prompt id {missing[0]} is not in the prompt table")
        messages = {p: prompt_table[p] for p in pid_values}
    else:
        raise InputError(
            f"missing column: prompt or prompt_id (found {', '.join(names)})",
            file=file,
            field="prompt",
        )
    texts = table.column(t_col).combine_chunks()
    if pa.types.is_null(texts.type):
        texts = pa.array([None] * len(texts), pa.string())
    elif not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise _bad(file, int(lines[0]), t_col, f"response must be a string, got {texts.type}")
    truncated = None
    if f_col is not None:
        truncated = np.asarray(
            pc.fill_null(pc.equal(table.column(f_col).combine_chunks(), "length"), False)
        )
    return _Frame(
        file=file,
        pid_values=pid_values,
        pid_code=codes,
        sample_idx=np.asarray(idx_arr, dtype=np.int64),
        rewards=_numeric_or_error(table.column(r_col).combine_chunks(), file, lines, r_col),
        texts=texts,
        lines=lines,
        truncated=truncated,
        messages=messages,
    )


def _load_prompt_table(path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in list_table_files(path):
        table, lines = _read(f, DEFAULT_COLUMNS)
        names = table.column_names
        col = "messages" if "messages" in names else _pick(names, DEFAULT_COLUMNS, "prompt")
        if col is None:
            raise InputError("prompt table needs a messages or prompt column", file=str(f))
        msgs = _messages_of(table.column(col).to_pylist(), str(f), lines, col)
        ids = table.column("prompt_id").to_pylist() if "prompt_id" in names else None
        for i, m in enumerate(msgs):
            pid = prompt_id(m)
            if ids is not None and ids[i] != pid:
                raise _bad(
                    str(f),
                    int(lines[i]),
                    "prompt_id",
                    f"prompt_id {ids[i]} is not the hash of the messages ({pid})",
                )
            out[pid] = m
    return out


def _stage_frames(stage: Path) -> list[_Frame]:
    """A stage folder: samples and scores joined by (prompt_id, sample_idx)."""
    prompt_table = _load_prompt_table(stage / "prompts.parquet")
    samples = [read_table_file(f) for f in list_table_files(stage / "samples")]
    scores = [
        read_table_file(f, ["prompt_id", "sample_idx", "reward"])
        for f in list_table_files(stage / "scores")
    ]
    s_tab = pa.concat_tables(samples, promote_options="default")
    r_tab = pa.concat_tables(scores, promote_options="default")
    _check_unique(r_tab, str(stage / "scores"))
    joined = s_tab.join(r_tab, keys=["prompt_id", "sample_idx"], join_type="left outer")
    lines = np.arange(1, joined.num_rows + 1)
    frame = _long_frame(joined, lines, str(stage / "samples"), DEFAULT_COLUMNS, prompt_table)
    return [frame]


def _check_unique(table: pa.Table, where: str) -> None:
    enc = table.column("prompt_id").combine_chunks().dictionary_encode()
    key = np.asarray(enc.indices, dtype=np.int64) * (2**32) + np.asarray(table.column("sample_idx"))
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(dup):
        i = int(order[dup[0] + 1])
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({enc.dictionary[enc.indices[i].as_py()]}, "
            f"{table.column('sample_idx')[i].as_py()})",
            file=where,
            row=i + 1,
            field="sample_idx",
        )


def load_pool_one_pass(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    prompts: str | Path | None = None,
    exclude_truncated: bool = False,
) -> Pool:
    """Load a scored pool from ``path`` (file, folder of shards, or stage folder).

    ``columns`` maps a logical field (prompt, prompt_id, responses, rewards, response, reward,
    sample_idx, finish_reason) to the input's column name. ``prompts`` is a prompt table for long
    rows that carry only ``prompt_id``. Non-finite rewards and empty responses are dropped and
    counted; truncated responses (finish_reason ``length``) too when ``exclude_truncated``.
    """
    path = Path(path)
    cols = dict(DEFAULT_COLUMNS)
    for k, v in (columns or {}).items():
        if k not in cols:
            raise InputError(f"unknown column key {k!r}; use one of {', '.join(cols)}")
        cols[k] = (v,)
    if path.is_dir() and (path / "samples").is_dir() and (path / "scores").is_dir():
        frames, layout = _stage_frames(path), "stage"
    else:
        prompt_table = _load_prompt_table(Path(prompts)) if prompts else None
        if prompt_table is None and path.is_dir() and (path / "prompts.parquet").exists():
            prompt_table = _load_prompt_table(path / "prompts.parquet")
        frames, layout = [], None
        for f in list_table_files(path):
            if f.name == "prompts.parquet":
                continue
            table, lines = _read(f, cols)
            if table.num_rows == 0:
                continue
            names = table.column_names
            wide = any(_pick(names, cols, k) is not None for k in ("responses", "rewards"))
            this = "wide" if wide else "long"
            layout = layout or this
            if this != layout:
                raise InputError(
                    f"file is in the {this} layout, earlier files in the {layout} one", file=str(f)
                )
            frames.append(
                _wide_frame(table, lines, str(f), cols)
                if wide
                else _long_frame(table, lines, str(f), cols, prompt_table)
            )
        if not frames:
            raise InputError("the pool is empty: no rows found", file=str(path))
    return _merge(frames, layout or "wide", str(path), exclude_truncated)


def _merge(frames: list[_Frame], layout: str, source: str, exclude_truncated: bool) -> Pool:
    all_pids = sorted({p for f in frames for p in f.pid_values})
    rank = {p: i for i, p in enumerate(all_pids)}
    codes = np.concatenate(
        [np.array([rank[p] for p in f.pid_values], dtype=np.int64)[f.pid_code] for f in frames]
    )
    sample_idx = np.concatenate([f.sample_idx for f in frames])
    rewards = np.concatenate([f.rewards for f in frames])
    texts = pa.chunked_array([f.texts.cast(pa.large_string()) for f in frames]).combine_chunks()
    if len(sample_idx) and sample_idx.min() < 0:
        i = int(np.argmin(sample_idx))
        f, row = _origin(frames, i)
        raise _bad(f, row, "sample_idx", "sample index must be >= 0")

    key = codes * (int(sample_idx.max(initial=0)) + 1) + sample_idx
    order = None if np.all(key[1:] > key[:-1]) else np.argsort(key, kind="stable")
    skey = key if order is None else key[order]
    dup = np.flatnonzero(skey[1:] == skey[:-1])
    if len(dup):
        a, b = (
            (int(dup[0]), int(dup[0]) + 1)
            if order is None
            else (int(order[dup[0]]), int(order[dup[0] + 1]))
        )
        fa, ra = _origin(frames, a)
        fb, rb = _origin(frames, b)
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({all_pids[codes[b]]}, {sample_idx[b]}); "
            f"first seen in {fa} row {ra}",
            file=fb,
            row=rb,
            field="sample_idx",
        )
    finite = np.isfinite(rewards)
    stripped = pc.utf8_length(pc.utf8_trim_whitespace(texts))
    nonempty = np.asarray(pc.fill_null(pc.greater(stripped, 0), False))
    keep = finite & nonempty
    dropped = {
        "non_finite_reward": int((~finite).sum()),
        "empty_response": int((finite & ~nonempty).sum()),
    }
    if exclude_truncated:
        trunc = np.concatenate(
            [
                f.truncated if f.truncated is not None else np.zeros(len(f.sample_idx), bool)
                for f in frames
            ]
        )
        dropped["truncated"] = int((keep & trunc).sum())
        keep &= ~trunc
    sel = np.flatnonzero(keep) if order is None else order[keep[order]]
    counts = np.bincount(codes[sel], minlength=len(all_pids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    messages = {}
    for f in frames:
        messages.update(f.messages)
    msg_arr = pa.array([messages[p] for p in all_pids], type=MESSAGES_TYPE)
    return Pool(
        prompt_ids=np.array(all_pids, dtype=object),
        messages=msg_arr,
        offsets=offsets,
        sample_idx=sample_idx[sel],
        rewards=rewards[sel],
        texts=ArrowTexts(texts, sel),
        responses_in=len(rewards),
        dropped=dropped,
        layout=layout,
        source=source,
    )


def _origin(frames: list[_Frame], i: int) -> tuple[str, int]:
    for f in frames:
        if i < len(f.lines):
            return f.file, int(f.lines[i])
        i -= len(f.lines)
    raise IndexError(i)
