"""Pass 1 of the pair stage: a scored pool's keys, rewards and flags, grouped by prompt.

Reads only what selection needs — prompt keys, sample indices, rewards, finish reasons and a
per-response "empty text" flag computed batch by batch (the text itself is dropped at once) —
from a file, a folder of shards or a stage folder. The response texts stay in the files; pass 2
(:mod:`sweetspot.pairs.texts`) fetches those of the selected rows only. Memory grows with the
number of responses (a few bytes each), never with the pool's text. Every bad row is reported by
file, row (JSONL: line) and field; the row is found when the error happens, not carried along.

Layouts, detected from the columns:
- wide, one row per prompt: ``prompt``/``instruction``, ``responses``/``output``,
  ``rewards``/``scores`` (lists of equal length; the list position is the sample index);
- long, one row per response: ``prompt`` or ``prompt_id`` (+ a prompt table), ``sample_idx``,
  ``response``/``text``, ``reward``;
- a stage folder written by ``sweetspot sample`` and ``sweetspot score``: ``prompts.parquet``,
  ``samples/`` and ``scores/``, joined by (prompt_id, sample_idx).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.ids import prompt_id, to_messages
from sweetspot.io import MESSAGES_TYPE, iter_jsonl_rows, list_table_files
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.sources import JsonReadError, SourceFile
from sweetspot.pairs.texts import (
    ArrowTexts,
    ChunkedMessages,
    MessageSource,
    StreamedTexts,
    TextFile,
    TextSource,
)

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

# A progress hook: called with the description and total (in files) of a pass, then with the
# fraction of a file each batch covered.
ProgressHook = Callable[[str, float], None] | None


@dataclass
class Pool:
    """A scored pool: all prompts, and their usable responses as flat arrays.

    Prompts are sorted by ``prompt_ids``; the responses of prompt ``p`` are the flat rows
    ``offsets[p]:offsets[p+1]``, ordered by sample index. Only finite rewards of non-empty (and,
    when asked, non-truncated) responses are here; the others are counted in ``dropped``.
    ``texts`` and ``messages`` fetch the response texts and prompt messages of the rows and
    prompts a pair needs (from the files, for a pool loaded by :func:`load_pool`).
    """

    prompt_ids: np.ndarray
    messages: MessageSource | pa.Array
    offsets: np.ndarray
    sample_idx: np.ndarray
    rewards: np.ndarray
    texts: TextSource
    responses_in: int
    dropped: dict[str, int] = field(default_factory=dict)
    layout: str = "wide"
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.messages, (pa.Array, pa.ChunkedArray)):
            self.messages = ChunkedMessages.from_array(self.messages)

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    @cached_property
    def prompt_id_array(self) -> pa.Array:
        return pa.array(self.prompt_ids.tolist(), pa.string())

    def context(self, ddof: float = 0.0, seed: int = 0) -> PoolContext:
        """Statistics of this pool for pair selection."""
        return PoolContext(
            self.rewards, self.offsets, self.sample_idx, self.prompt_ids, ddof=ddof, seed=seed
        )


# -- small helpers ---------------------------------------------------------------------------


def _pick(names: list[str], columns: dict[str, tuple[str, ...]], key: str) -> str | None:
    for c in columns[key]:
        if c in names:
            return c
    return None


def _missing(key: str, cols: dict, names: list[str], file: SourceFile) -> InputError:
    return InputError(
        f"missing column (looked for {', '.join(cols[key])}; found {', '.join(names)})",
        file=str(file),
        field=key,
    )


def _bad(file: SourceFile, row: int, fld: str, msg: str) -> InputError:
    """An error at 0-based ``row`` of ``file`` (its line is looked up now)."""
    return InputError(msg, file=str(file), row=file.line(row), field=fld)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _numeric(arr: pa.Array, file: SourceFile, first: int, fld: str, parent=None) -> np.ndarray:
    """Rewards as float64 (null -> NaN); a non-numeric value is an error naming its row."""
    t = arr.type
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        valid = np.flatnonzero(~np.asarray(pc.is_null(arr)))
        i = int(valid[0]) if len(valid) else 0
        row = first + int(parent[i] if parent is not None else i)
        raise _bad(file, row, fld, f"reward is not a number: {arr[i].as_py()!r}"[:200])
    return np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), np.nan), dtype=np.float64)


def _nonempty(texts: pa.Array) -> np.ndarray:
    """Per text: not null and not only whitespace (the text itself is not kept)."""
    if pa.types.is_null(texts.type):
        return np.zeros(len(texts), dtype=bool)
    if pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.large_string())
    blank = pc.or_kleene(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts))
    return np.asarray(pc.fill_null(pc.invert(blank), False), dtype=bool)


def _message_key(prompts: pa.Array) -> pa.Array | None:
    """A string per row that is equal exactly when two message lists are (role and content;
    each part length-prefixed, so the join is unambiguous); None when the column is not a list
    of {role, content} strings (rows then go through Python one by one)."""
    vt = prompts.type.value_type
    if not pa.types.is_struct(vt):
        return None
    names = [vt.field(i).name for i in range(vt.num_fields)]
    if "role" not in names or "content" not in names:
        return None
    flat = pc.list_flatten(prompts)
    parts = []
    for name in ("role", "content"):
        f = pc.struct_field(flat, name)
        if not _is_text(f.type):
            return None
        f = f.cast(pa.large_string())
        parts += [pc.cast(pc.binary_length(f), pa.large_string()), f]
    keys = pc.binary_join_element_wise(parts[0], ":", parts[1], parts[2], ":", parts[3], "")
    offsets = np.asarray(prompts.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    listed = pa.LargeListArray.from_arrays(pa.array(offsets), keys, mask=prompts.is_null())
    return pc.binary_join(listed, pa.scalar("", pa.large_string()))


# -- accumulation across files ---------------------------------------------------------------


class _Prompts:
    """The prompts met so far: id -> code (order of first appearance), where each prompt's
    messages are (an Arrow chunk and a row in it) and where it was first seen."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.ids: list[str] = []
        self.loc: list[tuple[int, int]] = []
        self.origin: list[tuple[int, int]] = []
        self.chunks: list[pa.Array] = []

    def add_chunk(self, messages: pa.Array) -> int:
        self.chunks.append(messages)
        return len(self.chunks) - 1

    def intern(self, pid: str, loc: tuple[int, int], origin: tuple[int, int]) -> tuple[int, bool]:
        """The code of ``pid`` and whether it is new."""
        code = self.code.get(pid)
        if code is not None:
            return code, False
        code = len(self.ids)
        self.code[pid] = code
        self.ids.append(pid)
        self.loc.append(loc)
        self.origin.append(origin)
        return code, True


class _Columns:
    """Per-response arrays, appended batch by batch, concatenated once at the end."""

    def __init__(self, *names: str) -> None:
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self.rows = 0

    def append(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.parts[k].append(v)
        self.rows += len(next(iter(arrays.values())))

    def take(self, name: str, dtype) -> np.ndarray:
        parts = self.parts.pop(name)
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        return out.astype(dtype, copy=False)


@dataclass
class _Scan:
    """What pass 1 collects from every file."""

    cols: dict
    prompts: _Prompts = field(default_factory=_Prompts)
    data: _Columns = field(
        default_factory=lambda: _Columns("code", "idx", "reward", "nonempty", "truncated")
    )
    text_files: list[TextFile] = field(default_factory=list)
    files: list[SourceFile] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # global id of each file's first response
    exclude_truncated: bool = False
    progress: ProgressHook = None

    def where(self, g: int) -> tuple[SourceFile, int]:
        """The file and 0-based row of global response ``g`` (long layouts)."""
        k = int(np.searchsorted(np.asarray(self.starts), g, side="right") - 1)
        return self.files[k], g - self.starts[k]

    def tick(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress("", fraction)


def _prompt_table_messages(
    values: pa.Array, file: SourceFile, first: int, fld: str
) -> tuple[list[str], pa.Array]:
    """Prompt ids and normalised Arrow messages of prompt values (strings or message lists);
    a bad value is an error naming its row."""
    msgs = []
    for i, v in enumerate(values.to_pylist()):
        try:
            msgs.append(to_messages(v, where=fld))
        except ValueError as e:
            raise _bad(file, first + i, fld, str(e)) from None
    return [prompt_id(m) for m in msgs], pa.array(msgs, MESSAGES_TYPE)


def _encode_prompts(
    scan: _Scan, col: pa.Array, file: SourceFile, file_no: int, first: int, fld: str
) -> np.ndarray:
    """Prompt codes of a batch of long rows keyed by their prompt (text or messages)."""
    if _is_text(col.type):
        keys = col
    elif _is_list(col.type):
        keys = _message_key(col)
    else:
        keys = None
    if keys is None or keys.null_count:
        # not a list of {role, content} strings, or a null somewhere: Python finds the bad row
        pids, msgs = _prompt_table_messages(col, file, first, fld)
        chunk = scan.prompts.add_chunk(msgs)
        codes = [
            scan.prompts.intern(p, (chunk, i), (file_no, first + i))[0] for i, p in enumerate(pids)
        ]
        return np.array(codes, dtype=np.int32)
    enc = keys.dictionary_encode()
    indices = np.asarray(enc.indices, dtype=np.int64)
    _, first_rows = np.unique(indices, return_index=True)
    pids, msgs = _prompt_table_messages(col.take(pa.array(first_rows)), file, first, fld)
    # a value that is invalid somewhere other than its first row cannot exist: equal keys are
    # equal values
    chunk = scan.prompts.add_chunk(msgs)
    lut = np.array(
        [
            scan.prompts.intern(p, (chunk, j), (file_no, first + int(first_rows[j])))[0]
            for j, p in enumerate(pids)
        ],
        dtype=np.int32,
    )
    return lut[indices]


def _encode_ids(
    scan: _Scan,
    col: pa.Array,
    file: SourceFile,
    file_no: int,
    first: int,
    fld: str,
    table: dict[str, tuple[int, int]] | None,
    lookup_only: bool = False,
) -> np.ndarray:
    """Prompt codes of a batch of long rows keyed by prompt_id (checked against the table);
    ``lookup_only``: ids not met before get -1 (score rows of unknown samples)."""
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise _bad(file, first + row, fld, "missing prompt id")
    if not _is_text(col.type):
        col = col.cast(pa.string())
    enc = col.dictionary_encode()
    values = enc.dictionary.to_pylist()
    indices = np.asarray(enc.indices, dtype=np.int64)
    lut = np.empty(len(values), dtype=np.int32)
    for j, p in enumerate(values):
        if lookup_only:
            lut[j] = scan.prompts.code.get(p, -1)
            continue
        if table is None:
            raise InputError(
                "rows name prompt_id but no prompt table was given (--prompts FILE)",
                file=str(file),
                field=fld,
            )
        loc = table.get(p)
        if loc is None:
            row = first + int(np.argmax(indices == j))
            raise _bad(file, row, fld, f"prompt id {p} is not in the prompt table")
        lut[j] = scan.prompts.intern(p, loc, (file_no, first))[0]
    return lut[indices]


# -- long layout -------------------------------------------------------------------------------


def _scan_long(
    scan: _Scan,
    file: SourceFile,
    table: dict[str, tuple[int, int]] | None,
    *,
    with_reward: bool = True,
) -> None:
    """One long-layout file (or a samples shard, ``with_reward=False``)."""
    cols, names = scan.cols, file.names
    p_col, id_col = _pick(names, cols, "prompt"), _pick(names, cols, "prompt_id")
    t_col, r_col = _pick(names, cols, "response"), _pick(names, cols, "reward")
    i_col, f_col = _pick(names, cols, "sample_idx"), _pick(names, cols, "finish_reason")
    needed = (("response", t_col), ("sample_idx", i_col))
    if with_reward:
        needed += (("reward", r_col),)
    for key, col in needed:
        if col is None:
            raise _missing(key, cols, names, file)
    if p_col is None and id_col is None:
        raise InputError(
            f"missing column: prompt or prompt_id (found {', '.join(names)})",
            file=str(file),
            field="prompt",
        )
    key_col = p_col if p_col is not None else id_col
    read = [key_col, i_col, t_col]
    types = {i_col: pa.int64(), t_col: pa.string()}
    if key_col == id_col:
        types[id_col] = pa.string()
    if with_reward:
        read.append(r_col)
        types[r_col] = pa.float64()
    if scan.exclude_truncated and f_col is not None:
        read.append(f_col)
        types[f_col] = pa.string()
    file_no = len(scan.files)
    scan.files.append(file)
    scan.starts.append(scan.data.rows)
    start = scan.data.rows
    total = None
    for first, batch in file.batches(read, types):
        n = batch.num_rows
        idx_arr = batch.column(i_col)
        if not pa.types.is_integer(idx_arr.type):
            raise _bad(file, first, i_col, f"sample index must be an integer, got {idx_arr.type}")
        if idx_arr.null_count:
            row = int(np.flatnonzero(np.asarray(idx_arr.is_null()))[0])
            raise _bad(file, first + row, i_col, "missing sample index")
        idx = np.asarray(idx_arr, dtype=np.int64)
        if n and idx.min() < 0:
            raise _bad(file, first + int(np.argmin(idx)), i_col, "sample index must be >= 0")
        if key_col == p_col:
            codes = _encode_prompts(scan, batch.column(p_col), file, file_no, first, p_col)
        else:
            codes = _encode_ids(scan, batch.column(id_col), file, file_no, first, id_col, table)
        texts = batch.column(t_col)
        if not (_is_text(texts.type) or pa.types.is_null(texts.type)):
            raise _bad(file, first, t_col, f"response must be a string, got {texts.type}")
        trunc = np.zeros(n, dtype=bool)
        if scan.exclude_truncated and f_col is not None:
            trunc = np.asarray(pc.fill_null(pc.equal(batch.column(f_col), "length"), False))
        arrays = dict(code=codes, idx=idx, nonempty=_nonempty(texts), truncated=trunc)
        if with_reward:
            arrays["reward"] = _numeric(batch.column(r_col), file, first, r_col)
        scan.data.append(**arrays)
        total = _tick_rows(scan, file, n, total)
    scan.text_files.append(TextFile(file, start, scan.data.rows - start, t_col, wide=False))


def _tick_rows(scan: _Scan, file: SourceFile, n: int, total: int | None) -> int | None:
    """Advance the progress by the share of ``file`` that ``n`` rows are (Parquet: known rows;
    JSONL: counted at the end)."""
    if scan.progress is None:
        return total
    if total is None and file.is_parquet:
        import pyarrow.parquet as pq

        total = pq.ParquetFile(file.path).metadata.num_rows or 1
    if total:
        scan.tick(n / total)
    return total


# -- wide layout -------------------------------------------------------------------------------


def _scan_wide(scan: _Scan, file: SourceFile) -> None:
    cols, names = scan.cols, file.names
    p_col, r_col, s_col = (_pick(names, cols, k) for k in ("prompt", "responses", "rewards"))
    for key, col in (("prompt", p_col), ("responses", r_col), ("rewards", s_col)):
        if col is None:
            raise _missing(key, cols, names, file)
    types = {r_col: pa.list_(pa.string()), s_col: pa.list_(pa.float64())}
    file_no = len(scan.files)
    scan.files.append(file)
    scan.starts.append(scan.data.rows)
    start = scan.data.rows
    total = None
    for first, batch in file.batches([p_col, r_col, s_col], types):
        n = batch.num_rows
        responses, rewards = batch.column(r_col), batch.column(s_col)
        for col, arr in ((r_col, responses), (s_col, rewards)):
            if not _is_list(arr.type):
                raise _bad(file, first, col, f"must be a list, got {arr.type}")
            if arr.null_count:
                row = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
                raise _bad(file, first + row, col, "missing list")
        len_r = np.asarray(pc.list_value_length(responses))
        len_s = np.asarray(pc.list_value_length(rewards))
        bad = np.flatnonzero(len_r != len_s)
        if len(bad):
            i = int(bad[0])
            raise _bad(
                file,
                first + i,
                s_col,
                f"{len_s[i]} rewards for {len_r[i]} responses: lists must have equal length",
            )
        pids, msgs = _prompt_table_messages(batch.column(p_col), file, first, p_col)
        chunk = scan.prompts.add_chunk(msgs)
        codes = np.empty(n, dtype=np.int32)
        for i, p in enumerate(pids):
            code, new = scan.prompts.intern(p, (chunk, i), (file_no, first + i))
            if not new:
                raise _duplicate_prompt(scan, code, file, first + i, p_col, msgs[i])
            codes[i] = code
        parent = np.repeat(np.arange(n), len_r)
        row_start = np.concatenate([[0], np.cumsum(len_r)[:-1]]).astype(np.int64)
        flat_rewards = _numeric(pc.list_flatten(rewards), file, first, s_col, parent)
        texts = pc.list_flatten(responses)
        if not (_is_text(texts.type) or pa.types.is_null(texts.type)):
            raise _bad(file, first, r_col, f"responses must be strings, got {texts.type}")
        scan.data.append(
            code=codes[parent],
            idx=np.arange(len(parent), dtype=np.int64) - row_start[parent],
            reward=flat_rewards,
            nonempty=_nonempty(texts),
            truncated=np.zeros(len(parent), dtype=bool),
        )
        total = _tick_rows(scan, file, n, total)
    scan.text_files.append(TextFile(file, start, scan.data.rows - start, r_col, wide=True))


def _duplicate_prompt(
    scan: _Scan, code: int, file: SourceFile, row: int, fld: str, messages: pa.Scalar
) -> InputError:
    f_no, f_row = scan.prompts.origin[code]
    other = scan.files[f_no]
    content = messages.as_py()[-1]["content"]
    shown = content if len(content) <= 60 else content[:57] + "..."
    where = "row" if other is file else f"{other} row"
    return InputError(
        f"prompt {scan.prompts.ids[code]} ({shown!r}) has a second row; first seen in "
        f"{where} {other.line(f_row)} (a wide file has one row per prompt)",
        file=str(file),
        row=file.line(row),
        field=fld,
    )


# -- prompt tables and stage folders ----------------------------------------------------------


def _load_prompt_table(path: Path, scan: _Scan) -> dict[str, tuple[int, int]]:
    """prompt_id -> where its messages are (a chunk of ``scan.prompts``), from a prompt table;
    a prompt_id that is not the hash of its messages is an error naming the row."""
    out: dict[str, tuple[int, int]] = {}
    for path_f in list_table_files(path):
        file = SourceFile(path_f)
        try:
            names = file.names
            col = "messages" if "messages" in names else _pick(names, DEFAULT_COLUMNS, "prompt")
            if col is None:
                raise InputError("prompt table needs a messages or prompt column", file=str(file))
            read = [col] + (["prompt_id"] if "prompt_id" in names else [])
            for first, batch in file.batches(read, {"prompt_id": pa.string()}):
                pids, msgs = _prompt_table_messages(batch.column(col), file, first, col)
                chunk = scan.prompts.add_chunk(msgs)
                ids = batch.column("prompt_id").to_pylist() if "prompt_id" in read else None
                for i, pid in enumerate(pids):
                    if ids is not None and ids[i] != pid:
                        raise _bad(
                            file,
                            first + i,
                            "prompt_id",
                            f"prompt_id {ids[i]} is not the hash of the messages ({pid})",
                        )
                    out[pid] = (chunk, i)
        except JsonReadError as e:
            raise _json_error(e, file, DEFAULT_COLUMNS) from None
    return out


def _scan_scores(scan: _Scan, file: SourceFile, file_no: int, data: _Columns) -> None:
    """One scores shard: (prompt code, sample index, reward) and where each row is."""
    names = file.names
    for col in ("prompt_id", "sample_idx", "reward"):
        if col not in names:
            raise InputError("missing column", file=str(file), field=col)
    types = {"prompt_id": pa.string(), "sample_idx": pa.int64(), "reward": pa.float64()}
    for first, batch in file.batches(["prompt_id", "sample_idx", "reward"], types):
        idx_arr = batch.column("sample_idx")
        if not pa.types.is_integer(idx_arr.type):
            raise _bad(
                file, first, "sample_idx", f"sample index must be an integer, got {idx_arr.type}"
            )
        if idx_arr.null_count:
            row = int(np.flatnonzero(np.asarray(idx_arr.is_null()))[0])
            raise _bad(file, first + row, "sample_idx", "missing sample index")
        codes = _encode_ids(
            scan, batch.column("prompt_id"), file, 0, first, "prompt_id", None, lookup_only=True
        )
        data.append(
            code=codes,
            idx=np.asarray(idx_arr, dtype=np.int64),
            reward=_numeric(batch.column("reward"), file, first, "reward"),
            file=np.full(batch.num_rows, file_no, dtype=np.int32),
            row=np.arange(first, first + batch.num_rows, dtype=np.int64),
        )


def _join_scores(scan: _Scan, stage: Path, code: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The reward of every sample (``code``, ``idx``) from ``stage/scores``, joined by
    (prompt_id, sample_idx); a sample without a score gets NaN (counted as non-finite)."""
    files = [SourceFile(f) for f in list_table_files(stage / "scores")]
    data = _Columns("code", "idx", "reward", "file", "row")
    for file_no, f in enumerate(files):
        _guard_json(lambda f=f, k=file_no: _scan_scores(scan, f, k, data), f, DEFAULT_COLUMNS)
    r_code, r_idx = data.take("code", np.int32), data.take("idx", np.int64)
    r_reward = data.take("reward", np.float64)
    r_file, r_row = data.take("file", np.int32), data.take("row", np.int64)
    known = np.flatnonzero(r_code >= 0)  # scores of prompts that have no sample are ignored
    if len(known) < len(r_code):
        r_code, r_idx, r_reward, r_file, r_row = (
            a[known] for a in (r_code, r_idx, r_reward, r_file, r_row)
        )
    s_key, r_key = _pair_keys((code, idx), (r_code, r_idx))
    order = np.argsort(r_key, kind="stable")
    sk = r_key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if len(dup):
        a, b = int(order[dup[0]]), int(order[dup[0] + 1])
        fa, fb = files[r_file[a]], files[r_file[b]]
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({scan.prompts.ids[r_code[b]]}, {r_idx[b]}); "
            f"first seen in {fa} row {fa.line(int(r_row[a]))}",
            file=str(fb),
            row=fb.line(int(r_row[b])),
            field="sample_idx",
        )
    reward = np.full(len(s_key), np.nan)
    if len(sk):
        pos = np.minimum(np.searchsorted(sk, s_key), len(sk) - 1)
        hit = sk[pos] == s_key
        reward[hit] = r_reward[order[pos[hit]]]
    return reward


def _pair_keys(*pairs: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """One int64 key per (code, sample_idx), equal exactly when both are, for several arrays."""
    top = max((int(i.max()) for _, i in pairs if len(i)), default=0) + 1
    n_codes = max((int(c.max()) for c, _ in pairs if len(c)), default=0) + 1
    if n_codes * top < 2**62:
        return [c.astype(np.int64) * top + i for c, i in pairs]
    uniq = np.unique(np.concatenate([i for _, i in pairs]))
    return [c.astype(np.int64) * len(uniq) + np.searchsorted(uniq, i) for c, i in pairs]


# -- the pool ----------------------------------------------------------------------------------


def load_pool(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    prompts: str | Path | None = None,
    exclude_truncated: bool = False,
    progress: ProgressHook = None,
) -> Pool:
    """Load a scored pool's selection data from ``path`` (file, folder of shards, or stage
    folder); the texts stay in the files until a pair needs them (``pool.texts``).

    ``columns`` maps a logical field (prompt, prompt_id, responses, rewards, response, reward,
    sample_idx, finish_reason) to the input's column name. ``prompts`` is a prompt table for long
    rows that carry only ``prompt_id``. Non-finite rewards and empty responses are dropped and
    counted; truncated responses (finish_reason ``length``) too when ``exclude_truncated``.
    ``progress(description, total)`` starts the pass, ``progress("", fraction)`` advances it.
    """
    path = Path(path)
    cols = dict(DEFAULT_COLUMNS)
    for k, v in (columns or {}).items():
        if k not in cols:
            raise InputError(f"unknown column key {k!r}; use one of {', '.join(cols)}")
        cols[k] = (v,)
    scan = _Scan(cols, exclude_truncated=exclude_truncated, progress=progress)
    stage = path.is_dir() and (path / "samples").is_dir() and (path / "scores").is_dir()
    if stage:
        table = _load_prompt_table(path / "prompts.parquet", scan)
        files = [SourceFile(f) for f in list_table_files(path / "samples")]
        _begin(progress, files)
        for f in files:
            _guard_json(lambda f=f: _scan_long(scan, f, table, with_reward=False), f, cols)
        layout = "stage"
    else:
        table = None
        if prompts:
            table = _load_prompt_table(Path(prompts), scan)
        elif path.is_dir() and (path / "prompts.parquet").exists():
            table = _load_prompt_table(path / "prompts.parquet", scan)
        files = [SourceFile(f) for f in list_table_files(path) if f.name != "prompts.parquet"]
        _begin(progress, files)
        layout = None
        for f in files:
            names = _guard_json(lambda f=f: f.names, f, cols)
            if not names:
                scan.tick(1.0)
                continue
            wide = any(_pick(names, cols, k) is not None for k in ("responses", "rewards"))
            this = "wide" if wide else "long"
            layout = layout or this
            if this != layout:
                raise InputError(
                    f"file is in the {this} layout, earlier files in the {layout} one", file=str(f)
                )
            if wide:
                _guard_json(lambda f=f: _scan_wide(scan, f), f, cols)
            else:
                _guard_json(lambda f=f: _scan_long(scan, f, table), f, cols)
        if scan.data.rows == 0 and not scan.prompts.ids:
            raise InputError("the pool is empty: no rows found", file=str(path))
    return _assemble(scan, layout or "wide", str(path), path if stage else None)


def _begin(progress: ProgressHook, files: list[SourceFile]) -> None:
    if progress is not None:
        progress("pass 1: rewards", float(len(files)))


def _guard_json(fn, file: SourceFile, cols: dict):
    try:
        return fn()
    except JsonReadError as e:
        raise _json_error(e, file, cols) from None


def _json_error(e: JsonReadError, file: SourceFile, cols: dict) -> InputError:
    """Locate why pyarrow's JSON reader rejected ``file``: a line that is not a JSON object, a
    field of the wrong kind (both named with their line), or else the reader's own reason."""
    bad = file.json_problem()
    if bad is not None:
        return bad

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
    for line, row in iter_jsonl_rows(file.path):
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
    return InputError(f"cannot read JSON ({e.reason})", file=str(file))


def _sort_order(rc: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """The permutation that sorts responses by (prompt rank, sample index), stably; None when
    they already are. Shards usually hold each prompt's samples as sorted runs, so the runs are
    ordered instead of every row (a full sort only when that fails)."""
    n = len(rc)
    if n < 2:
        return None
    brk = (rc[1:] != rc[:-1]) | (idx[1:] <= idx[:-1])
    starts = np.concatenate([[0], np.flatnonzero(brk) + 1])
    if len(starts) == 1:
        return None
    if len(starts) <= n // 4:
        lens = np.diff(np.concatenate([starts, [n]]))
        perm = np.lexsort((idx[starts], rc[starts]))
        out_starts = np.concatenate([[0], np.cumsum(lens[perm])[:-1]])
        order = np.repeat(starts[perm] - out_starts, lens[perm]) + np.arange(n)
        r, i = rc[order], idx[order]
        if np.all((r[1:] > r[:-1]) | ((r[1:] == r[:-1]) & (i[1:] >= i[:-1]))):
            if np.array_equal(order, np.arange(n)):
                return None
            return order
    return np.lexsort((idx, rc))


def _assemble(scan: _Scan, layout: str, source: str, stage: Path | None) -> Pool:
    """Sort the responses by (prompt id, sample index), check they are unique, drop the
    unusable ones (counted) and index what is left by prompt."""
    prompts, data = scan.prompts, scan.data
    code = data.take("code", np.int32)
    idx = data.take("idx", np.int64)
    if stage is not None:
        rewards = _join_scores(scan, stage, code, idx)
        data.parts.pop("reward")
    else:
        rewards = data.take("reward", np.float64)
    n_prompts = len(prompts.ids)
    ids = np.array(prompts.ids, dtype=object)
    by_id = np.argsort(ids, kind="stable") if n_prompts else np.zeros(0, dtype=np.int64)
    rank = np.empty(n_prompts, dtype=np.int32)
    rank[by_id] = np.arange(n_prompts, dtype=np.int32)
    rc = rank[code] if len(code) else code
    del code
    order = _sort_order(rc, idx)
    rs = rc if order is None else rc[order]
    ix = idx if order is None else idx[order]
    dup = np.flatnonzero((rs[1:] == rs[:-1]) & (ix[1:] == ix[:-1]))
    if len(dup):
        a, b = int(dup[0]), int(dup[0]) + 1
        if order is not None:
            a, b = int(order[a]), int(order[b])
        fa, ra = scan.where(a)
        fb, rb = scan.where(b)
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({ids[by_id[rs[dup[0]]]]}, {ix[dup[0]]}); "
            f"first seen in {fa} row {fa.line(ra)}",
            file=str(fb),
            row=fb.line(rb),
            field="sample_idx",
        )
    del rs, ix
    finite = np.isfinite(rewards)
    nonempty = data.take("nonempty", bool)
    keep = finite & nonempty
    dropped = {
        "non_finite_reward": int((~finite).sum()),
        "empty_response": int((finite & ~nonempty).sum()),
    }
    del finite, nonempty
    truncated = data.take("truncated", bool)
    if scan.exclude_truncated:
        dropped["truncated"] = int((keep & truncated).sum())
        keep &= ~truncated
    del truncated
    sel = np.flatnonzero(keep) if order is None else order[keep[order]]
    del keep, order
    counts = np.bincount(rc[sel], minlength=n_prompts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    loc = np.array(prompts.loc, dtype=np.int64).reshape(-1, 2)[by_id]
    messages = ChunkedMessages(prompts.chunks, loc[:, 0], loc[:, 1])
    return Pool(
        prompt_ids=ids[by_id],
        messages=messages,
        offsets=offsets,
        sample_idx=idx[sel],
        rewards=rewards[sel],
        texts=StreamedTexts(scan.text_files, sel, progress=scan.progress),
        responses_in=len(rewards),
        dropped=dropped,
        layout=layout,
        source=source,
    )


__all__ = ["ArrowTexts", "DEFAULT_COLUMNS", "Pool", "TextSource", "load_pool"]
