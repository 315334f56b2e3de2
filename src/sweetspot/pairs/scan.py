"""Pass 1, one file at a time: what pair selection needs from an input file.

Each function here reads one file and returns its prompt keys, sample indices, rewards, and the
per-response "empty text" and "truncated" flags, batch by batch; texts are looked at once (for
the empty flag) and dropped. Nothing here touches state shared between files, so files are read
by worker threads while :mod:`sweetspot.pairs.pool` merges their results in order. Every bad
value is an :class:`~sweetspot.errors.InputError` naming file, row (JSONL: line) and field.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _enc

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.ids import prompt_id, to_messages
from sweetspot.io import MESSAGE_TYPE, MESSAGES_TYPE, iter_jsonl_rows
from sweetspot.pairs.arrays import to_numpy
from sweetspot.pairs.capture import Catcher, Caught, Picker, TextBudget, worth_catching
from sweetspot.pairs.sources import JsonReadError, SourceFile

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

Tick = Callable[[float], None] | None


@dataclass
class Keys:
    """The prompts of a batch: distinct prompt ids in order of first use, the 0-based file row
    where each is first used, each row's position in ``ids``, and (for rows that carry their
    prompt) the messages of each distinct prompt."""

    ids: list[str]
    first_rows: np.ndarray
    index: np.ndarray
    messages: pa.Array | None = None


@dataclass
class BatchScan:
    """One batch of a file, reduced to what selection needs (one entry per response)."""

    keys: Keys
    idx: np.ndarray
    reward: np.ndarray | None = None
    nonempty: np.ndarray | None = None
    truncated: np.ndarray | None = None
    parent: np.ndarray | None = None  # wide: each response's row in ``keys.index``


@dataclass
class FileScan:
    """A whole file, reduced; ``text_column`` holds its texts (a list per row when ``wide``)."""

    file: SourceFile
    batches: list[BatchScan] = field(default_factory=list)
    text_column: str | None = None
    wide: bool = False
    caught: list[Caught] = field(default_factory=list)  # texts of picked rows (capture.py)
    kept: list[pa.Array] | None = None  # short texts kept whole, batch by batch (capture.py)
    scores_matched: bool = False  # stage: rewards came from the scores shard of the same name

    @property
    def rows(self) -> int:
        return sum(len(b.idx) for b in self.batches)


# -- small helpers ---------------------------------------------------------------------------


def pick(names: list[str], columns: dict[str, tuple[str, ...]], key: str) -> str | None:
    """The first of ``columns[key]`` that is among ``names``."""
    for c in columns[key]:
        if c in names:
            return c
    return None


def missing(key: str, cols: dict, names: list[str], file: SourceFile) -> InputError:
    return InputError(
        f"missing column (looked for {', '.join(cols[key])}; found {', '.join(names)})",
        file=str(file),
        field=key,
    )


def bad(file: SourceFile, row: int, fld: str, msg: str) -> InputError:
    """An error at 0-based ``row`` of ``file`` (its line is looked up now)."""
    return InputError(msg, file=str(file), row=file.line(row), field=fld)


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _first_null(arr: pa.Array) -> int:
    return int(np.flatnonzero(to_numpy(arr.is_null()))[0])


def _numeric(arr: pa.Array, file: SourceFile, first: int, fld: str, parent=None) -> np.ndarray:
    """Rewards as float64 (null -> NaN); a non-numeric value is an error naming its row."""
    t = arr.type
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        valid = np.flatnonzero(~to_numpy(pc.is_null(arr)))
        i = int(valid[0]) if len(valid) else 0
        row = first + int(parent[i] if parent is not None else i)
        raise bad(file, row, fld, f"reward is not a number: {arr[i].as_py()!r}"[:200])
    if pa.types.is_floating(t) and not arr.null_count:
        return to_numpy(arr, np.float64)
    return to_numpy(pc.fill_null(pc.cast(arr, pa.float64()), np.nan), np.float64)


def _nonempty(
    texts: pa.Array, file: SourceFile, first: int, fld: str, parent: np.ndarray | None = None
) -> np.ndarray:
    """Per text: not null and not only whitespace (the text itself is not kept). Text that is
    not valid UTF-8 is an error naming its row."""
    if pa.types.is_null(texts.type):
        return np.zeros(len(texts), dtype=bool)
    if pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.large_string())
    try:
        blank = pc.or_kleene(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts))
    except pa.ArrowInvalid:
        problem = file.json_problem()
        if problem is not None:
            raise problem from None
        for i in range(len(texts)):
            try:
                texts[i].as_py()
            except UnicodeDecodeError:
                row = first + int(parent[i] if parent is not None else i)
                raise bad(file, row, fld, "text is not valid UTF-8") from None
        raise
    return to_numpy(pc.fill_null(pc.invert(blank), False))


def _sample_idx(arr: pa.Array, file: SourceFile, first: int, fld: str) -> np.ndarray:
    if not pa.types.is_integer(arr.type):
        raise bad(file, first, fld, f"sample index must be an integer, got {arr.type}")
    if arr.null_count:
        raise bad(file, first + _first_null(arr), fld, "missing sample index")
    idx = to_numpy(arr, np.int64)
    if len(idx) and idx.min() < 0:
        raise bad(file, first + int(np.argmin(idx)), fld, "sample index must be >= 0")
    return idx


# -- prompt keys -------------------------------------------------------------------------------


def _by_first_use(col: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The distinct values of a (dictionary-encoded or plain) column in order of first use,
    the 0-based row of each first use, and each row's position among them."""
    enc = col if pa.types.is_dictionary(col.type) else col.dictionary_encode()
    codes = to_numpy(enc.indices)
    if not len(codes):
        return enc.dictionary.slice(0, 0), np.zeros(0, np.int64), np.zeros(0, np.int32)
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    used, first_run = np.unique(codes[starts], return_index=True)
    order = np.argsort(first_run, kind="stable")
    used = used[order]
    remap = np.zeros(len(enc.dictionary), dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return enc.dictionary.take(pa.array(used)), starts[first_run[order]], remap[codes]


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
        if not is_text(f.type):
            return None
        f = f.cast(pa.large_string())
        parts += [pc.cast(pc.binary_length(f), pa.large_string()), f]
    colon, empty = pa.scalar(":", pa.large_string()), pa.scalar("", pa.large_string())
    keys = pc.binary_join_element_wise(parts[0], colon, parts[1], parts[2], colon, parts[3], empty)
    offsets = to_numpy(prompts.offsets, np.int64)
    offsets = offsets - offsets[0]
    listed = pa.LargeListArray.from_arrays(pa.array(offsets), keys, mask=prompts.is_null())
    return pc.binary_join(listed, empty)


def _hash_id(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


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
    values: pa.Array, file: SourceFile, rows: np.ndarray, fld: str
) -> tuple[list[str], pa.Array]:
    """Prompt ids and normalised Arrow messages of prompt values (strings or message lists);
    ``rows`` are their 0-based rows in ``file``, to name a bad value's row.

    Ids are those of :func:`sweetspot.ids.prompt_id` (sha256 of the messages' canonical JSON),
    with the JSON written directly for the two common forms.
    """
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if is_text(values.type) and not values.null_count:
        pids = [_hash_id(f'[{{"content":{_enc(t)},"role":"user"}}]') for t in values.to_pylist()]
        return pids, _user_messages(values)
    if _plain_messages(values):
        flat = pc.list_flatten(values)
        role_arr, content_arr = pc.struct_field(flat, "role"), pc.struct_field(flat, "content")
        roles = [_enc(r) for r in role_arr.to_pylist()]
        contents = [_enc(c) for c in content_arr.to_pylist()]
        offsets = to_numpy(values.offsets, np.int64)
        offsets = offsets - offsets[0]
        pids = [
            _hash_id(
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
            msgs.append(to_messages(v, where=fld))
        except ValueError as e:
            raise bad(file, int(rows[i]), fld, str(e)) from None
    return [prompt_id(m) for m in msgs], pa.array(msgs, MESSAGES_TYPE)


def _prompt_keys(col: pa.Array, file: SourceFile, first: int, fld: str) -> Keys:
    """Keys of long rows that carry their prompt (text or messages)."""
    if pa.types.is_dictionary(col.type) or is_text(col.type):
        keys = col
    elif is_list(col.type):
        keys = _message_key(col)
    else:
        keys = None
    if keys is None or keys.null_count:
        # not a list of {role, content} strings, or a null somewhere: Python finds the bad row
        rows = first + np.arange(len(col))
        pids, msgs = prompt_messages(col, file, rows, fld)
        values, first_rows, index = _by_first_use(pa.array(pids, pa.string()))
        return Keys(values.to_pylist(), first + first_rows, index, msgs.take(pa.array(first_rows)))
    _, first_rows, index = _by_first_use(keys)
    pids, msgs = prompt_messages(col.take(pa.array(first_rows)), file, first + first_rows, fld)
    return Keys(pids, first + first_rows, index, msgs)


def _id_keys(
    col: pa.Array, file: SourceFile, first: int, fld: str, table: dict | None, check: bool = True
) -> Keys:
    """Keys of long rows that name their prompt by ``prompt_id`` (each checked against the
    prompt ``table`` when ``check``)."""
    if col.null_count:
        raise bad(file, first + _first_null(col), fld, "missing prompt id")
    if not (pa.types.is_dictionary(col.type) or is_text(col.type)):
        col = col.cast(pa.string())
    values, first_rows, index = _by_first_use(col)
    ids = values.to_pylist()
    if check:
        if table is None:
            raise InputError(
                "rows name prompt_id but no prompt table was given (--prompts FILE)",
                file=str(file),
                field=fld,
            )
        for j, p in enumerate(ids):
            if p not in table:
                raise bad(
                    file,
                    first + int(first_rows[j]),
                    fld,
                    f"prompt id {p} is not in the prompt table",
                )
    return Keys(ids, first + first_rows, index)


# -- the files -------------------------------------------------------------------------------


def _parquet_dictionary(file: SourceFile, *cols: str | None) -> list[str]:
    """Columns to read dictionary-encoded (string keys repeated on many rows)."""
    schema = file.schema
    return [
        c for c in cols if c is not None and c in schema.names and is_text(schema.field(c).type)
    ]


def scan_long(
    file: SourceFile,
    cols: dict,
    table: dict | None,
    *,
    with_reward: bool = True,
    exclude_truncated: bool = False,
    max_samples: int | None = None,
    tick: Tick = None,
    picker: Picker | None = None,
    scores: SourceFile | None = None,
    budget: TextBudget | None = None,
) -> FileScan:
    """One long-layout file (or a samples shard of a stage folder, ``with_reward=False``: its
    rewards come from ``scores``, the score shard of the same name, when that holds the same
    (prompt_id, sample_idx) rows in the same order). With a ``picker``, the texts of the rows
    it picks are caught on the way (``FileScan.caught``); texts too short to catch are kept
    whole (``FileScan.kept``) while ``budget`` allows."""
    names = file.names
    p_col, id_col = pick(names, cols, "prompt"), pick(names, cols, "prompt_id")
    t_col, r_col = pick(names, cols, "response"), pick(names, cols, "reward")
    i_col, f_col = pick(names, cols, "sample_idx"), pick(names, cols, "finish_reason")
    needed = (("response", t_col), ("sample_idx", i_col))
    if with_reward:
        needed += (("reward", r_col),)
    for key, col in needed:
        if col is None:
            raise missing(key, cols, names, file)
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
    if exclude_truncated and f_col is not None:
        read.append(f_col)
        types[f_col] = pa.string()
    out = FileScan(file, text_column=t_col)
    mirror = _score_rows(scores) if scores is not None and not with_reward else None
    out.scores_matched = mirror is not None
    catcher = Catcher(picker) if picker is not None else None
    dictionary = _parquet_dictionary(file, key_col, f_col) if file.is_parquet else []
    total = file.metadata.num_rows if file.is_parquet else None
    for first, batch in file.batches(read, types, dictionary=dictionary):
        n = batch.num_rows
        idx = _sample_idx(batch.column(i_col), file, first, i_col)
        if key_col == p_col:
            keys = _prompt_keys(batch.column(p_col), file, first, p_col)
        else:
            keys = _id_keys(batch.column(id_col), file, first, id_col, table)
        texts = batch.column(t_col)
        if not (is_text(texts.type) or pa.types.is_null(texts.type)):
            raise bad(file, first, t_col, f"response must be a string, got {texts.type}")
        scan = BatchScan(keys, idx, nonempty=_nonempty(texts, file, first, t_col))
        if with_reward:
            scan.reward = _numeric(batch.column(r_col), file, first, r_col)
        elif out.scores_matched:
            scan.reward = mirror.rewards_for(keys, idx, first)
            out.scores_matched = scan.reward is not None
        if exclude_truncated:
            scan.truncated = np.zeros(n, dtype=bool)
            if f_col is not None:
                eq = pc.equal(batch.column(f_col), "length")
                scan.truncated = to_numpy(pc.fill_null(eq, False))
        out.batches.append(scan)
        if first == 0 and budget is not None and total and not worth_catching(texts):
            # texts of a few bytes: keep the column (its estimated size) rather than read again
            out.kept = [] if budget.claim(texts.nbytes * total // max(1, n)) else None
        if out.kept is not None:
            out.kept.append(texts)
        if catcher is not None and (
            scan.reward is None or (first == 0 and not worth_catching(texts))
        ):
            catcher = None  # no rewards here (stage without a matching score shard), short texts
        if catcher is not None:
            keep = np.isfinite(scan.reward) & scan.nonempty
            if scan.truncated is not None:
                keep &= ~scan.truncated
            if max_samples is not None:
                keep &= idx < max_samples
            positions = first + np.arange(n, dtype=np.int64)
            last = total is not None and first + n == total  # nothing of this file follows
            caught = catcher.feed(
                keys.ids, keys.index, idx, scan.reward, keep, positions, texts, last
            )
            if caught is not None:
                out.caught.append(caught)
        if tick is not None:
            tick(n)
    if catcher is not None:
        caught = catcher.flush()
        if caught is not None:
            out.caught.append(caught)
    if mirror is not None and mirror.rows != sum(len(b.idx) for b in out.batches):
        out.scores_matched = False
    return out


@dataclass
class _ScoreRows:
    """The rows of one score shard, to match a samples shard of the same name row by row."""

    ids: np.ndarray  # prompt id per row (object array)
    idx: np.ndarray
    reward: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.idx)

    def rewards_for(self, keys: Keys, idx: np.ndarray, first: int) -> np.ndarray | None:
        """The rewards of a samples batch starting at row ``first``, or None when the score
        rows there are not the same (prompt_id, sample_idx) in the same order."""
        stop = first + len(idx)
        if stop > self.rows or not np.array_equal(self.idx[first:stop], idx):
            return None
        ids = np.array(keys.ids, dtype=object)[keys.index]
        if not np.array_equal(self.ids[first:stop], ids):
            return None
        return self.reward[first:stop]


def _score_rows(file: SourceFile) -> _ScoreRows | None:
    """A score shard read whole (keys and rewards only); None if it cannot be matched."""
    try:
        fs = scan_scores(file)
    except (InputError, JsonReadError):
        return None  # the pool-wide join reads it again and names the problem
    if not fs.batches:
        return _ScoreRows(np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0))
    ids = np.concatenate([np.array(b.keys.ids, dtype=object)[b.keys.index] for b in fs.batches])
    return _ScoreRows(
        ids,
        np.concatenate([b.idx for b in fs.batches]),
        np.concatenate([b.reward for b in fs.batches]),
    )


def scan_wide(
    file: SourceFile,
    cols: dict,
    tick: Tick = None,
    picker: Picker | None = None,
    max_samples: int | None = None,
) -> FileScan:
    """One wide-layout file: a row per prompt with lists of responses and rewards (with a
    ``picker``, the texts of the rows it picks are caught on the way)."""
    names = file.names
    p_col, r_col, s_col = (pick(names, cols, k) for k in ("prompt", "responses", "rewards"))
    for key, col in (("prompt", p_col), ("responses", r_col), ("rewards", s_col)):
        if col is None:
            raise missing(key, cols, names, file)
    types = {r_col: pa.list_(pa.string()), s_col: pa.list_(pa.float64())}
    out = FileScan(file, text_column=r_col, wide=True)
    catcher = Catcher(picker) if picker is not None else None
    flat_start = 0  # response position in the file of the batch's first response
    for first, batch in file.batches([p_col, r_col, s_col], types):
        n = batch.num_rows
        responses, rewards = batch.column(r_col), batch.column(s_col)
        for col, arr in ((r_col, responses), (s_col, rewards)):
            if not is_list(arr.type):
                raise bad(file, first, col, f"must be a list, got {arr.type}")
            if arr.null_count:
                raise bad(file, first + _first_null(arr), col, "missing list")
        len_r = to_numpy(pc.list_value_length(responses))
        len_s = to_numpy(pc.list_value_length(rewards))
        wrong = np.flatnonzero(len_r != len_s)
        if len(wrong):
            i = int(wrong[0])
            raise bad(
                file,
                first + i,
                s_col,
                f"{len_s[i]} rewards for {len_r[i]} responses: lists must have equal length",
            )
        rows = first + np.arange(n)
        pids, msgs = prompt_messages(batch.column(p_col), file, rows, p_col)
        parent = np.repeat(np.arange(n), len_r)
        row_start = np.concatenate([[0], np.cumsum(len_r)[:-1]]).astype(np.int64)
        texts = pc.list_flatten(responses)
        if not (is_text(texts.type) or pa.types.is_null(texts.type)):
            raise bad(file, first, r_col, f"responses must be strings, got {texts.type}")
        scan = BatchScan(
            Keys(pids, rows, np.arange(n, dtype=np.int32), msgs),
            np.arange(len(parent), dtype=np.int64) - row_start[parent],
            reward=_numeric(pc.list_flatten(rewards), file, first, s_col, parent),
            nonempty=_nonempty(texts, file, first, r_col, parent),
            parent=parent,
        )
        out.batches.append(scan)
        if catcher is not None and first == 0 and not worth_catching(texts):
            catcher = None  # texts of a few bytes: reading them again costs less
        if catcher is not None:  # a row holds all of its prompt's responses: nothing waits
            keep = np.isfinite(scan.reward) & scan.nonempty
            if max_samples is not None:
                keep &= scan.idx < max_samples
            positions = flat_start + np.arange(len(parent), dtype=np.int64)
            caught = catcher.feed(
                pids, parent, scan.idx, scan.reward, keep, positions, texts, last=True
            )
            if caught is not None:
                out.caught.append(caught)
        flat_start += len(parent)
        if tick is not None:
            tick(n)
    return out


def scan_scores(file: SourceFile, tick: Tick = None) -> FileScan:
    """One scores shard of a stage folder: (prompt_id, sample_idx, reward) per row."""
    names = file.names
    for col in ("prompt_id", "sample_idx", "reward"):
        if col not in names:
            raise InputError("missing column", file=str(file), field=col)
    types = {"prompt_id": pa.string(), "sample_idx": pa.int64(), "reward": pa.float64()}
    out = FileScan(file)
    dictionary = _parquet_dictionary(file, "prompt_id") if file.is_parquet else []
    for first, batch in file.batches(list(types), types, dictionary=dictionary):
        out.batches.append(
            BatchScan(
                _id_keys(batch.column("prompt_id"), file, first, "prompt_id", None, check=False),
                _sample_idx(batch.column("sample_idx"), file, first, "sample_idx"),
                reward=_numeric(batch.column("reward"), file, first, "reward"),
            )
        )
        if tick is not None:
            tick(batch.num_rows)
    return out


def scan_prompt_table(file: SourceFile) -> list[tuple[list[str], pa.Array]]:
    """(prompt ids, messages) per batch of a prompt table; a prompt_id that is not the hash of
    its messages is an error naming the row."""
    names = file.names
    col = "messages" if "messages" in names else pick(names, DEFAULT_COLUMNS, "prompt")
    if col is None:
        raise InputError("prompt table needs a messages or prompt column", file=str(file))
    read = [col] + (["prompt_id"] if "prompt_id" in names else [])
    out = []
    for first, batch in file.batches(read, {"prompt_id": pa.string()}):
        rows = first + np.arange(batch.num_rows)
        pids, msgs = prompt_messages(batch.column(col), file, rows, col)
        if "prompt_id" in read:
            given = batch.column("prompt_id").to_pylist()
            for i, pid in enumerate(pids):
                if given[i] != pid:
                    raise bad(
                        file,
                        first + i,
                        "prompt_id",
                        f"prompt_id {given[i]} is not the hash of the messages ({pid})",
                    )
        out.append((pids, msgs))
    return out


# -- JSON errors -------------------------------------------------------------------------------


def json_error(e: JsonReadError, file: SourceFile, cols: dict) -> InputError:
    """Locate why pyarrow's JSON reader rejected ``file``: a line that is not a JSON object, a
    field of the wrong kind (both named with their line), or else the reader's own reason."""
    problem = file.json_problem()
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
